"""What the firmware is checked against: the TensorFlow golden model."""
