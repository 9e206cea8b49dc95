"""Disaster recovery (operations guide chapter).

dr-drill (dr_drill.py): inject a disaster, recover with the runbooks' own steps, and measure
RTO, RPO and integrity from data, for CI to run on a schedule.
"""
