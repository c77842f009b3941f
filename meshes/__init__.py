"""Shipped organ meshes (data only): installed as ``organsim.meshes``.

Load them with :func:`organsim.mesh.shipped.load_shipped`; see README.md here.
"""
