"""Signing in: the login page, company sign-in through OpenID Connect, staff two-factor."""
