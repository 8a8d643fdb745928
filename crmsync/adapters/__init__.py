"""CRM adapters behind one interface (`base.CrmAdapter`), registered by name."""
