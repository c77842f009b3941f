"""organsim.io"""
