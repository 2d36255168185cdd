"""The edge agent: the software that runs in the vehicle.

It reads a CAN bus (python-can: virtual, socketcan, log replay), decodes frames to VSS signals,
runs the collection campaigns the cloud installed, keeps what it collects in a store-and-forward
buffer on disk, and sends it over the vehicle link; it obeys only downlink messages the cloud
signed. It ships to cars, so it imports ``drivetrain.core`` and libraries only, never
``drivetrain.cloud``. See docs/edge-agent.md.
"""
