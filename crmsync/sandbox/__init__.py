"""A local emulator of the HubSpot and Pipedrive APIs (`crmsync sandbox`)."""
