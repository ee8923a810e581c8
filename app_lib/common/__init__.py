"""What every feature shares: settings, data layer, errors, embedded database, app plumbing."""
