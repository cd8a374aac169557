"""Devices, links and deployments: what the hardware offers, from shipped profiles and deploy.toml."""
