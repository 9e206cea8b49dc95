"""GitOps workflow (operations guide chapter): deploy what git says, read the change history,
roll back by a revert commit.

Runbooks: gitops-sync, gitops-history, gitops-rollback (gitops.py).
"""
