"""The collection's modules share one failure shape (plugins/module_utils/failure.py): each
module_utils' failure class is a subclass of ModuleFailure, and result() gives fail_json the
same keyword arguments whichever of them was raised."""

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    backup_verify,
    kube,
    opensearch_api,
    prom_tsdb,
    s3_backup,
    thanos_blocks,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.failure import ModuleFailure

FAILURES = [
    kube.KubeFailure,
    opensearch_api.OpenSearchFailure,
    s3_backup.BackupFailure,
    thanos_blocks.BucketFailure,
    backup_verify.VerifyFailure,
    prom_tsdb.PrometheusFailure,
]


@pytest.mark.parametrize("cls", FAILURES, ids=lambda c: c.__name__)
def test_each_failure_is_a_module_failure(cls: type) -> None:
    assert issubclass(cls, ModuleFailure)
    assert "result" not in vars(cls) and "__init__" not in vars(cls)


@pytest.mark.parametrize("cls", FAILURES, ids=lambda c: c.__name__)
def test_result_has_one_shape(cls: type) -> None:
    failure = cls("the bucket is gone", "create it", bucket="b1", changed=False)
    assert str(failure) == "the bucket is gone"
    assert failure.result() == {"msg": "the bucket is gone (create it)", "bucket": "b1",
                                "changed": False}
    assert cls("no hint").result() == {"msg": "no hint"}
    with pytest.raises(ModuleFailure):
        raise cls("caught by the base")
