"""organsim in the browser and in Jupyter (optional extra ``organsim[web]``)."""
