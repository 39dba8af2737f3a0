"""TensorFlow event-file reading without TensorFlow: incremental and CRC-checked."""
