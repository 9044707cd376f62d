"""Who is calling and what they may see: tokens, scopes and access, the audit trail."""
