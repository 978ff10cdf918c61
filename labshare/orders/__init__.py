"""Service orders: SMEs send instruments and samples to an institute for
verification, calibration or testing, tracked to the certificate."""
