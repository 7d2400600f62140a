"""Conservation laws of gradient flow and how finite steps, weight decay and momentum break them."""
