-- The embedded billing's own database (unused when BILLING_URL points at a real billing).
CREATE DATABASE billing OWNER bot;
