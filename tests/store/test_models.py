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


def ensemble_record(size: int = 3, seed: int = 4) -> tuple[store.ModelRecord, list]:
    """An ensemble of `size` LSTMs (seeds seed, seed + 1, …) on four features, and them."""
    from pipeline.model.lstm import LSTMClassifier
    from pipeline.model.scaler import Scaler

    features = [f"f{i}" for i in range(4)]
    networks = []
    for s in range(seed, seed + size):
        torch.manual_seed(s)
        networks.append(LSTMClassifier(4, hidden=8).eval())
    rec = store.ModelRecord(
        name="lstm",
        timeframe="1h",
        features=features,
        scaler=Scaler(np.zeros(4), np.ones(4), tuple(features)).to_dict(),
        config={"hidden": 8, "layers": 1, "dropout": 0.0, "window": 8, "threshold": 0.6},
        data_window={},
        metrics={},
        seed=seed,
        members=[
            store.MemberCheckpoint(s, checkpoint_bytes(n.state_dict()))
            for s, n in zip(range(seed, seed + size), networks, strict=True)
        ],
    )
    return rec, networks


def test_an_ensemble_is_one_record_of_checksummed_networks(db) -> None:
    import hashlib

    from pipeline.model.contract import load_for_inference, probabilities
    from pipeline.model.ensemble import Ensemble

    original, networks = ensemble_record()
    with db.connection() as conn:
        model_id = store.save_model(conn, original)
        loaded = store.load_model(conn, model_id)
        stored = conn.execute(
            "SELECT member, seed, checkpoint_sha256 FROM model_members WHERE model_id = %s "
            "ORDER BY member",
            (model_id,),
        ).fetchall()
        conn.commit()
    assert loaded.checkpoint == b"" and loaded.seeds == [4, 5, 6]
    assert [(m, s) for m, s, _ in stored] == [(0, 4), (1, 5), (2, 6)]
    for member, (_, _, digest) in zip(loaded.members, stored, strict=True):
        assert digest == hashlib.sha256(member.checkpoint).hexdigest() == member.checkpoint_sha256
    assert (
        loaded.checkpoint_sha256
        == original.checkpoint_sha256
        == store.ensemble_sha256([(s, d) for _, s, d in stored])
    )
    model = load_for_inference(loaded, loaded.features)
    assert isinstance(model.network, Ensemble) and model.network.seeds == (4, 5, 6)
    x = np.random.default_rng(0).standard_normal((5, 8, 4)).astype(np.float32)
    each = [probabilities(n, x, batch_size=1) for n in networks]
    got = probabilities(model.network, x, batch_size=1)
    assert np.array_equal(got, np.mean(each, axis=0))  # the mean of the members, bit for bit
    assert not np.array_equal(got, each[0])


def test_a_tampered_ensemble_member_is_refused_by_name(db) -> None:
    with db.connection() as conn:
        model_id = store.save_model(conn, ensemble_record()[0])
        conn.execute(
            "UPDATE model_members SET checkpoint = overlay(checkpoint placing '\\x00'::bytea "
            "from 200) WHERE model_id = %s AND member = 1",
            (model_id,),
        )
        conn.commit()
        with pytest.raises(store.ModelStoreError, match=r"member 1 \(seed 5\) checkpoint SHA"):
            store.load_model(conn, model_id)


def test_an_ensemble_missing_or_reseeded_member_is_refused(db) -> None:
    """Each remaining member's bytes still match their hash: the record's digest catches it."""
    with db.connection() as conn:
        dropped = store.save_model(conn, ensemble_record()[0])
        conn.execute("DELETE FROM model_members WHERE model_id = %s AND member = 2", (dropped,))
        reseeded = store.save_model(conn, ensemble_record()[0])
        conn.execute(
            "UPDATE model_members SET seed = 99 WHERE model_id = %s AND member = 0", (reseeded,)
        )
        gap = store.save_model(conn, ensemble_record()[0])
        conn.execute("DELETE FROM model_members WHERE model_id = %s AND member = 1", (gap,))
        conn.commit()
        for model_id, why in (
            (dropped, "members' digest"),
            (reseeded, "members' digest"),
            (gap, "member 1 is missing"),
        ):
            with pytest.raises(store.ModelStoreError, match=why):
                store.load_model(conn, model_id)
        # A production look-up reads the same checks (and leaves no transaction open).
        store.promote(conn, dropped, {"gate": "test"})
        with pytest.raises(store.ModelStoreError, match="members' digest"):
            store.production_model(conn, "lstm", "1h")
        assert conn.info.transaction_status.name == "IDLE"


def test_a_record_with_both_a_checkpoint_and_members_is_refused(db) -> None:
    rec, _ = ensemble_record(size=2)
    rec.checkpoint = record().checkpoint
    with db.connection() as conn, pytest.raises(store.ModelStoreError, match="not both"):
        store.save_model(conn, rec)
