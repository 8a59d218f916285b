"""Numbered schema migrations, applied in order at open; never edit one that has shipped."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "datasets and examples",
        """
        CREATE TABLE datasets (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            instruction TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '',
            parent_id TEXT REFERENCES datasets(id) ON DELETE SET NULL,
            version INTEGER NOT NULL DEFAULT 1,
            duplicates_removed INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE examples (
            id INTEGER PRIMARY KEY,
            dataset_id TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            reasoning TEXT,
            source TEXT NOT NULL CHECK (source IN ('seed', 'synthetic', 'imported')),
            split TEXT NOT NULL DEFAULT 'train' CHECK (split IN ('train', 'holdout', 'test')),
            provenance TEXT NOT NULL DEFAULT '{}',
            content_hash TEXT NOT NULL,
            input_chars INTEGER NOT NULL,
            output_chars INTEGER NOT NULL,
            has_reasoning INTEGER NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (dataset_id, content_hash),
            UNIQUE (dataset_id, position)
        );
        CREATE INDEX examples_summary
            ON examples(dataset_id, source, split, input_chars, output_chars, has_reasoning);
        """,
    ),
    (
        2,
        "jobs and their events",
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
            params TEXT NOT NULL,
            stage TEXT,
            progress_done REAL NOT NULL DEFAULT 0,
            progress_total REAL,
            metrics TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL DEFAULT '{}',
            result TEXT,
            cost_usd REAL NOT NULL DEFAULT 0,
            error TEXT,
            note TEXT,
            pid INTEGER,
            heartbeat_at REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            parent_id TEXT REFERENCES jobs(id) ON DELETE SET NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        );
        CREATE INDEX jobs_by_status ON jobs(status, created_at);
        CREATE INDEX jobs_by_parent ON jobs(parent_id);
        CREATE TABLE job_events (
            job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            at REAL NOT NULL,
            level TEXT NOT NULL,
            message TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (job_id, seq)
        );
        """,
    ),
    (
        3,
        "teacher call cache and accounting",
        """
        CREATE TABLE teacher_calls (
            key TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            request TEXT NOT NULL,
            reply TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL,
            latency_s REAL NOT NULL DEFAULT 0,
            job_id TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX teacher_calls_by_job ON teacher_calls(job_id);
        """,
    ),
    (
        4,
        "models",
        """
        CREATE TABLE models (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('trained', 'base')),
            base_model TEXT NOT NULL,
            method TEXT,
            dataset_id TEXT REFERENCES datasets(id) ON DELETE SET NULL,
            job_id TEXT REFERENCES jobs(id) ON DELETE SET NULL,
            instruction TEXT NOT NULL DEFAULT '',
            reasoning TEXT NOT NULL DEFAULT 'none',
            params TEXT NOT NULL DEFAULT '{}',
            metrics TEXT NOT NULL DEFAULT '{}',
            report TEXT,
            path TEXT,
            adapter_path TEXT,
            created_at REAL NOT NULL
        );
        """,
    ),
    (
        5,
        "teacher batches",
        """
        CREATE TABLE teacher_batches (
            input_file_id TEXT PRIMARY KEY,
            batch_id TEXT UNIQUE,
            job_id TEXT NOT NULL,
            model TEXT NOT NULL,
            api_base TEXT,
            requests TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('uploaded', 'submitted', 'collected', 'never_created', 'lost')),
            created_at REAL NOT NULL,
            ended_at REAL
        );
        CREATE INDEX teacher_batches_by_job ON teacher_batches(job_id, status);
        """,
    ),
]
