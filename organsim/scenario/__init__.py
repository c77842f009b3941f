"""organsim.scenario"""
