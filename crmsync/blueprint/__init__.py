"""The desired state of a client's CRM: models, YAML loading with positions, lint rules."""
