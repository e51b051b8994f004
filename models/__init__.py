"""The Qwen3-Omni engine, free of Celery, FastAPI and databases:

engine (the interface and its plain request/result types), loader (builds the one engine of a process),
transformers_backend and vllm_backend, prompting (validation and conversations both backends share), batcher
(cross-job batching), tasks (catalogue, parameters, prompts), variants, media (decoding), chunking and segments
(long media), captions (SRT/VTT/JSON), speech (talker WAV), errors, tiny (the test checkpoint builder)."""
