"""The Streamlit dashboard over the store: sweeps, leaderboard, trade-offs, devices, sweep comparison, CSV export."""
