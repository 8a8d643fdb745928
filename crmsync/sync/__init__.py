"""Record sync: the CRM's contacts, companies, deals and associations in the local store."""
