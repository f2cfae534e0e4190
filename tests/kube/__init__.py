"""Tests of the Kubernetes integration and the API emulator they run against."""
