"""Test helpers (oracle checks, browser and server starters) that benchmarks may import too."""
