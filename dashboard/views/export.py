"""Export: one device's report of a sweep as CSV, the very file `farm export` writes for it."""
import io

import pandas as pd
import streamlit as st

from farm.dashboard import filters, queries
from farm.dashboard.plain import md

selection = filters.current()
name = selection.sweep["name"]
st.title("Export")
st.markdown(f"Sweep **{md(name)}**: a row per configuration (its repeats pooled, with 95% intervals), as farm export writes it to reports/{md(name)}-DEVICE.csv. "
            "The model, variant, delegate and runtime filters do not apply to the file.")
if selection.sweep["state"] == "running":
    st.info("This sweep is still running: the file has the jobs as they stand now.", icon=":material/sync:")

devices = [d for d in queries.sweep_devices(selection.db, selection.sweep_id) if d in selection.devices]
if not devices:
    st.info(f"No device of sweep {md(name)} carries the chosen tags.", icon=":material/filter_alt_off:")
    st.stop()
device = st.selectbox("Device", devices, key="export_device")
csv = queries.device_csv(selection.db, selection.sweep_id, device)
st.download_button(f"Download {name}-{device}.csv", csv, file_name=f"{name}-{device}.csv", mime="text/csv",
                   on_click="ignore", icon=":material/download:", type="primary")
preview = pd.read_csv(io.StringIO(csv))
st.caption(f"{len(preview)} rows, {len(preview.columns)} columns")
st.dataframe(preview, hide_index=True)
