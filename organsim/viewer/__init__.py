"""organsim.viewer"""
