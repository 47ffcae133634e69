"""The model store keeps what rebuilds a model, refuses tampering and promotes one at a time."""

import numpy as np
import pytest
import torch

from pipeline.model.checkpoint import CheckpointError, checkpoint_bytes, read_checkpoint
from pipeline.store import models as store


def record(seed: int = 0) -> store.ModelRecord:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(3, 2)
    return store.ModelRecord(
        name="lstm",
        timeframe="1h",
        config={"hidden": 8},
        features=["a", "b", "c"],
        scaler={"mean": [0, 0, 0], "std": [1, 1, 1]},
        data_window={"train_end": "2022-06-30"},
        metrics={"val_accuracy": 0.52},
        seed=seed,
        checkpoint=checkpoint_bytes(layer.state_dict()),
        epochs=[
            {
                "epoch": 1,
                "train_loss": 0.7,
                "train_accuracy": 0.5,
                "val_loss": 0.69,
                "val_accuracy": 0.51,
                "gap": -0.01,
                "seconds": 1.0,
            }
        ],
    )


def test_round_trip_keeps_weights_and_metadata(db) -> None:
    original = record()
    with db.connection() as conn:
        model_id = store.save_model(conn, original)
        loaded = store.load_model(conn, model_id)
        assert store.epochs(conn, model_id)[0]["val_accuracy"] == 0.51
    assert loaded.status == "candidate"
    assert loaded.features == ["a", "b", "c"]
    assert loaded.checkpoint_sha256 == original.checkpoint_sha256
    assert loaded.checkpoint == original.checkpoint
    weights = read_checkpoint(loaded.checkpoint, loaded.id)
    for key, tensor in read_checkpoint(original.checkpoint).items():
        assert torch.equal(weights[key], tensor)


def test_a_tampered_checkpoint_is_refused(db) -> None:
    with db.connection() as conn:
        model_id = store.save_model(conn, record())
        conn.execute(
            "UPDATE models SET checkpoint = overlay(checkpoint placing '\\x00'::bytea from 200) "
            "WHERE id = %s",
            (model_id,),
        )
        conn.commit()
        with pytest.raises(store.ModelStoreError, match="does not match"):
            store.load_model(conn, model_id)


class Payload:
    """Anything that is not a tensor or a plain container: unpickling it would run code."""


def test_a_checkpoint_carrying_code_is_refused(db) -> None:
    """Even with a matching hash, weights_only refuses a pickled object when it is read."""
    import hashlib
    import io

    buffer = io.BytesIO()
    torch.save({"w": Payload()}, buffer)
    blob = buffer.getvalue()
    with db.connection() as conn:
        model_id = store.save_model(conn, record())
        conn.execute(
            "UPDATE models SET checkpoint = %s, checkpoint_sha256 = %s WHERE id = %s",
            (blob, hashlib.sha256(blob).hexdigest(), model_id),
        )
        conn.commit()
        loaded = store.load_model(conn, model_id)  # the hash matches: the bytes come back
    with pytest.raises(CheckpointError, match="not a plain state dict"):
        read_checkpoint(loaded.checkpoint, loaded.id)


def test_promotion_retires_the_previous_production_model(db) -> None:
    with db.connection() as conn:
        first, second = store.save_model(conn, record(1)), store.save_model(conn, record(2))
        assert store.promote(conn, first, {"gate": "passed"}) is None
        assert store.promote(conn, second, {"gate": "passed"}) == first
        assert store.production_model(conn, "lstm", "1h").id == second
        assert store.load_model(conn, first).status == "retired"
        with pytest.raises(store.ModelStoreError, match="only a candidate"):
            store.promote(conn, first, {})


def test_a_model_whose_features_are_missing_fails_clearly(db) -> None:
    from pipeline.model.contract import ModelMismatchError, load_for_inference
    from pipeline.model.lstm import LSTMClassifier
    from pipeline.model.scaler import Scaler

    features = [f"f{i}" for i in range(4)]
    network = LSTMClassifier(4, hidden=8)
    scaler = Scaler(np.zeros(4), np.ones(4), tuple(features))
    rec = store.ModelRecord(
        name="lstm",
        timeframe="1h",
        features=features,
        scaler=scaler.to_dict(),
        config={"hidden": 8, "layers": 1, "dropout": 0.0, "window": 8, "threshold": 0.6},
        data_window={},
        metrics={},
        seed=0,
        checkpoint=checkpoint_bytes(network.state_dict()),
    )
    with db.connection() as conn:
        rec = store.load_model(conn, store.save_model(conn, rec))
    loaded = load_for_inference(rec, [*features, "extra"])
    assert loaded.threshold == 0.6 and loaded.window == 8
    with pytest.raises(ModelMismatchError, match="needs features the data lacks: f3"):
        load_for_inference(rec, features[:3])
    rec.config = {**rec.config, "hidden": 16}
    with pytest.raises(ModelMismatchError, match="weights do not fit"):
        load_for_inference(rec, features)


def test_undefined_figures_are_stored_as_null(db) -> None:
    rec = record()
    rec.metrics = {"val_ece": float("nan"), "profit_factor": float("inf"), "ok": 1.0}
    with db.connection() as conn:
        model_id = store.save_model(conn, rec)
        assert store.promote(conn, model_id, {"win_rate": float("nan")}) is None
        loaded = store.load_model(conn, model_id)
    assert loaded.metrics == {"val_ece": None, "profit_factor": None, "ok": 1.0}
