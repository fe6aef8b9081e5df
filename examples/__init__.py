"""Small, complete programs that use trio-actors; each one is run by the test suite."""
