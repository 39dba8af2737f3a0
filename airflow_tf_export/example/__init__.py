"""A small real model with train and evaluate callables, used by the demo and the tests."""
