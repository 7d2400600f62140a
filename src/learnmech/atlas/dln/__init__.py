"""Deep linear networks: the solvable setting of Saxe, McClelland & Ganguli (2014)."""
