"""Checklists (operations guide chapter): the daily, weekly and monthly operations checklists.

Runbooks: checklist-daily, checklist-weekly, checklist-monthly (checklists.py).
"""
