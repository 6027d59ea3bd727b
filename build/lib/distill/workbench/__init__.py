"""The trading-models workbench the assistant answers about: model registry, synthetic prices,
backtest engine, methodology docs and the tools that expose them. Submodules are imported on demand so
that importing the package stays cheap."""
