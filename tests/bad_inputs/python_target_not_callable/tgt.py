echo = 42
