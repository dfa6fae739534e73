"""reft_jax: ReFT (Reinforced Fine-Tuning for math reasoning) in JAX and Flax NNX."""
