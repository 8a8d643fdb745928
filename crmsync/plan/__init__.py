"""Provisioning plans: `diff` a blueprint against the CRM, `render` the plan, `apply` it."""
