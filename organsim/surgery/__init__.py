"""organsim.surgery"""
