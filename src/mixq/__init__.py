"""mixq: fast mixed-precision quantized inference on CPUs."""
