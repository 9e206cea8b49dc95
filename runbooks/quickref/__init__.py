"""Quick reference (operations guide chapter): the everyday reads.

Runbooks: status, ping; and the `watchkeeper query` / `watchkeeper logs` commands
(quickref.py, called by runbooks/cli.py).
"""
