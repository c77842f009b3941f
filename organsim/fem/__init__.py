"""organsim.fem"""
