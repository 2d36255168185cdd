"""Code shared by the vehicle (edge) and the cloud: signals, CAN codec, errors, settings."""
