/*
 * The one configuration table of flashgate.  Both programs read their whole
 * configuration from the environment through this list; docs/configuration.md
 * is checked against it by tests/unit/check-config.c.
 *
 * CFG(field, NAME, default, kind, min, max, choices, scope, doc)
 *   kind    INT (long long in [min,max]), STR, SECRET (string, masked in logs),
 *           BOOL (true/false/1/0/yes/no), USD (decimal dollars -> long long
 *           micro-dollars, in [min,max] micro-dollars), LIST (comma list, kept
 *           as string), ENUM (one of the '|'-separated choices)
 *   default "" means unset (strings NULL; derived defaults are filled in by
 *           config_load and documented as such)
 *   scope   GW gateway, WK worker, ALL both
 *
 * No include guard: this file is an X-macro list, included with CFG defined.
 */
/* ---- process and logging */
CFG(log_level,       "LOG_LEVEL",    "info", ENUM, 0, 0, "debug|info|warn|error", ALL, "Lowest log level written (JSON lines on stderr)")
CFG(instance_id,     "INSTANCE_ID",  "",     STR,  0, 0, NULL, ALL, "Instance name in logs, health and metrics (default: RAILWAY_REPLICA_ID, else host-pid)")

/* ---- Redis */
CFG(redis_url,        "REDIS_URL",        "",          SECRET, 0, 0, NULL, ALL, "redis://[:password@]host:port[/db]; wins over the variables below")
CFG(redis_public_url, "REDIS_PUBLIC_URL", "",          SECRET, 0, 0, NULL, ALL, "Used when REDIS_URL is unset")
CFG(redis_host,       "REDIS_HOST",       "127.0.0.1", STR,    0, 0, NULL, ALL, "Used when neither URL is set")
CFG(redis_port,       "REDIS_PORT",       "6379",      INT,    1, 65535, NULL, ALL, "Used when neither URL is set")
CFG(redis_password,   "REDIS_PASSWORD",   "",          SECRET, 0, 0, NULL, ALL, "Used when neither URL is set")
CFG(redis_connect_timeout_ms, "REDIS_CONNECT_TIMEOUT_MS", "2000", INT, 10, 60000, NULL, ALL, "Redis connect timeout")
CFG(redis_command_timeout_ms, "REDIS_COMMAND_TIMEOUT_MS", "2000", INT, 10, 60000, NULL, ALL, "Redis command timeout (non-blocking commands)")
CFG(redis_retry_max_ms,       "REDIS_RETRY_MAX_MS",       "5000", INT, 10, 600000, NULL, ALL, "Longest wait between Redis reconnect attempts (exponential backoff)")

/* ---- PostgreSQL */
CFG(database_url, "DATABASE_URL", "", SECRET, 0, 0, NULL, GW, "PostgreSQL connection string for profiles (unset: profile endpoints answer 503)")

/* ---- HTTP server (gateway) */
CFG(port,                "PORT",                 "3001",    INT, 1, 65535, NULL, GW, "HTTP listen port")
CFG(listen_address,      "LISTEN_ADDRESS",       "0.0.0.0", STR, 0, 0, NULL, GW, "HTTP listen address (IPv4 or IPv6 literal)")
CFG(http_threads,        "HTTP_THREADS",         "0",       INT, 0, 256, NULL, GW, "libmicrohttpd thread pool size (0: one per CPU core)")
CFG(http_max_connections,"HTTP_MAX_CONNECTIONS", "19900",   INT, 16, 1000000, NULL, GW, "Concurrent connection cap; RLIMIT_NOFILE is raised to match (clamped to the hard limit)")
CFG(http_conn_timeout_s, "HTTP_CONN_TIMEOUT_S",  "30",      INT, 1, 3600, NULL, GW, "Idle connection timeout (slow or silent clients are dropped)")
CFG(http_header_timeout_s,"HTTP_HEADER_TIMEOUT_S", "10",     INT, 1, 3600, NULL, GW, "Deadline for a request's headers, and for an idle keep-alive connection (slow-header clients are cut off)")
CFG(http_body_timeout_s, "HTTP_BODY_TIMEOUT_S",  "30",      INT, 1, 3600, NULL, GW, "Deadline for receiving a request body (the connection is closed past it)")
CFG(http_conn_memory,    "HTTP_CONN_MEMORY_BYTES","8192",   INT, 4096, 1048576, NULL, GW, "Per-connection memory pool (libmicrohttpd): holds the request head, parsed (cookies take about 2.5 times their size), and the response head; 431 past it. 8192 takes a browser request with a 2 KB JWT and 1.4 KB of cookies (16384: 4.5 KB of cookies); each open SSE stream keeps the whole pool")
CFG(http_reuseport,      "HTTP_REUSEPORT",       "false",   BOOL, 0, 0, NULL, GW, "Set SO_REUSEPORT so several gateway processes share PORT")
CFG(max_body_bytes,      "MAX_BODY_BYTES",       "1048576", INT, 1024, 67108864, NULL, GW, "Largest request body (413 past it)")
CFG(max_json_depth,      "MAX_JSON_DEPTH",       "32",      INT, 2, 1000, NULL, GW, "Deepest JSON nesting accepted in a request body (400 past it)")
CFG(shutdown_grace_ms,   "SHUTDOWN_GRACE_MS",    "10000",   INT, 0, 600000, NULL, GW, "On SIGTERM, how long in-flight requests may take before exit")
CFG(public_dir,          "PUBLIC_DIR",           "",        STR, 0, 0, NULL, GW, "Static files served at / (default: the repository's public/)")
CFG(cors_origins,        "CORS_ORIGINS",         "*",       LIST, 0, 0, NULL, GW, "Access-Control-Allow-Origin: * or a comma list of origins")

/* ---- identity */
CFG(auth_jwt_secret,   "AUTH_JWT_SECRET",   "",                   SECRET, 0, 0, NULL, GW, "HS256 secret for user JWTs; unset = insecure development mode")
CFG(admin_token,       "ADMIN_TOKEN",       "",                   SECRET, 0, 0, NULL, GW, "Bearer token for admin endpoints")
CFG(admin_allow_cidrs, "ADMIN_ALLOW_CIDRS", "127.0.0.0/8,::1/128", LIST,  0, 0, NULL, GW, "Client networks allowed to admin endpoints without a token")
CFG(trust_proxy,       "TRUST_PROXY",       "0",                  INT,    0, 16, NULL, GW, "How many proxies in X-Forwarded-For to trust (counted from the right)")

/* ---- jobs and queue (both programs) */
CFG(queue_max_waiting,  "QUEUE_MAX_WAITING",  "10000", INT, 1, 100000000, NULL, ALL, "Queue depth cap: submissions past it get 503 QUEUE_FULL")
CFG(idempotency_ttl_s,  "IDEMPOTENCY_TTL",    "86400", INT, 60, 31536000, NULL, ALL, "Seconds a job, its result and its idempotency keys are kept")
CFG(max_content_chars,  "MAX_CONTENT_CHARS",  "100000",INT, 1, 10000000, NULL, GW, "Longest accepted `content` (characters) in a job request")
CFG(events_token_ttl_s, "EVENTS_TOKEN_TTL",   "86400", INT, 60, 31536000, NULL, GW, "Lifetime of the job-bound token in eventsUrl")
CFG(job_attempts,       "JOB_ATTEMPTS",       "3",     INT, 1, 100, NULL, ALL, "Provider attempts per job (retries = attempts - 1)")
CFG(job_backoff_ms,     "JOB_BACKOFF_MS",     "2000",  INT, 0, 3600000, NULL, ALL, "Base of the exponential retry backoff (full jitter)")
CFG(job_lease_ms,       "JOB_LEASE_MS",       "30000", INT, 1000, 3600000, NULL, ALL, "Lease of an active job; a dead worker's job returns to waiting after it")
CFG(job_deadline_ms,    "JOB_DEADLINE_MS",    "600000",INT, 1000, 86400000, NULL, ALL, "A job still not done this long after submission fails with DEADLINE_EXCEEDED")
CFG(job_events_max,     "JOB_EVENTS_MAX",     "200",   INT, 8, 100000, NULL, ALL, "Events kept in one job's history (oldest trimmed)")

/* ---- worker */
CFG(worker_health_port,   "WORKER_HEALTH_PORT",   "3002", INT, 1, 65535, NULL, WK, "Worker health server port (/health, /ready)")
CFG(queue_concurrency,    "QUEUE_CONCURRENCY",    "20",   INT, 1, 5000, NULL, WK, "Jobs in flight per worker process")
CFG(worker_drain_seconds, "WORKER_DRAIN_SECONDS", "25",   INT, 0, 3600, NULL, WK, "On SIGTERM, how long in-flight jobs may run before they are handed back")
CFG(worker_heartbeat_ms,  "WORKER_HEARTBEAT_MS",  "5000", INT, 100, 600000, NULL, WK, "How often a worker records its heartbeat in Redis")

/* ---- AI providers (worker) */
CFG(ai_provider,              "AI_PROVIDER",              "",  ENUM, 0, 0, "openai|azure|offline", WK, "Provider (default: openai with OPENAI_API_KEY, azure with the Azure variables, else offline)")
CFG(openai_api_key,           "OPENAI_API_KEY",           "",  SECRET, 0, 0, NULL, WK, "OpenAI API key")
CFG(openai_base_url,          "OPENAI_BASE_URL",          "https://api.openai.com/v1", STR, 0, 0, NULL, WK, "OpenAI API base URL (Chat Completions at /chat/completions)")
CFG(openai_model,             "OPENAI_MODEL",             "gpt-4o-mini", STR, 0, 0, NULL, WK, "Model for Chat Completions")
CFG(azure_endpoint,           "AZURE_OPENAI_ENDPOINT",    "",  STR, 0, 0, NULL, WK, "Azure OpenAI resource endpoint, e.g. https://name.openai.azure.com")
CFG(azure_api_key,            "AZURE_OPENAI_API_KEY",     "",  SECRET, 0, 0, NULL, WK, "Azure OpenAI api-key")
CFG(azure_deployment,         "AZURE_OPENAI_DEPLOYMENT",  "",  STR, 0, 0, NULL, WK, "Azure OpenAI deployment name")
CFG(azure_api_version,        "AZURE_OPENAI_API_VERSION", "2024-06-01", STR, 0, 0, NULL, WK, "Azure OpenAI api-version query parameter")
CFG(provider_timeout_ms,      "PROVIDER_TIMEOUT_MS",      "60000", INT, 100, 3600000, NULL, WK, "Whole provider call timeout")
CFG(provider_connect_timeout_ms, "PROVIDER_CONNECT_TIMEOUT_MS", "10000", INT, 100, 600000, NULL, WK, "Provider connect timeout")
CFG(provider_max_reply_bytes, "PROVIDER_MAX_REPLY_BYTES", "4194304", INT, 1024, 268435456, NULL, WK, "Largest provider reply read; past it the call fails REPLY_TOO_LARGE")
CFG(provider_max_tokens,      "PROVIDER_MAX_TOKENS",      "4096", INT, 16, 200000, NULL, WK, "max_tokens asked of the model per call")

/* ---- fleet-wide limits, breakers, budget */
CFG(openai_rpm,            "OPENAI_RATE_LIMIT_RPM",  "200",   INT, 1, 10000000, NULL, WK, "OpenAI requests per minute, whole fleet")
CFG(openai_tpm,            "OPENAI_TPM",             "200000",INT, 0, 1000000000, NULL, WK, "OpenAI tokens per minute, whole fleet (0: no limit)")
CFG(openai_max_concurrent, "OPENAI_MAX_CONCURRENT",  "20",    INT, 1, 100000, NULL, WK, "OpenAI calls in flight, whole fleet")
CFG(azure_rpm,             "AZURE_RATE_LIMIT_RPM",   "200",   INT, 1, 10000000, NULL, WK, "Azure requests per minute, whole fleet")
CFG(azure_tpm,             "AZURE_TPM",              "200000",INT, 0, 1000000000, NULL, WK, "Azure tokens per minute, whole fleet (0: no limit)")
CFG(azure_max_concurrent,  "AZURE_MAX_CONCURRENT",   "20",    INT, 1, 100000, NULL, WK, "Azure calls in flight, whole fleet")
CFG(cb_failure_threshold,  "CB_FAILURE_THRESHOLD",   "5",     INT, 1, 1000, NULL, ALL, "Consecutive provider faults that open a breaker")
CFG(cb_failure_rate_pct,   "CB_FAILURE_RATE_PCT",    "50",    INT, 1, 100, NULL, ALL, "Failure rate over the sliding window that opens a breaker")
CFG(cb_window_calls,       "CB_WINDOW_CALLS",        "20",    INT, 1, 10000, NULL, ALL, "Sliding window size (calls) for the failure rate")
CFG(cb_min_calls,          "CB_MIN_CALLS",           "10",    INT, 1, 10000, NULL, ALL, "Calls in the window before the failure rate is judged")
CFG(cb_open_ms,            "CB_OPEN_MS",             "30000", INT, 100, 3600000, NULL, ALL, "How long an open breaker stays open before half-open")
CFG(cb_half_open_probes,   "CB_HALF_OPEN_PROBES",    "3",     INT, 1, 1000, NULL, ALL, "Probe calls let through while half-open (all must succeed to close)")
CFG(budget_monthly_limit,  "BUDGET_MONTHLY_LIMIT_USD","100",  USD, 0, 1000000000000000LL, NULL, ALL, "Monthly spend limit in USD (UTC calendar month)")
CFG(price_input_per_1m,    "PRICE_INPUT_PER_1M_USD", "0.15",  USD, 0, 1000000000000LL, NULL, WK, "Price of 1M input tokens, USD")
CFG(price_output_per_1m,   "PRICE_OUTPUT_PER_1M_USD","0.60",  USD, 0, 1000000000000LL, NULL, WK, "Price of 1M output tokens, USD")
CFG(budget_alert_pct,      "BUDGET_ALERT_PCT",       "80",    INT, 1, 100, NULL, GW, "budgetNearLimit alert threshold (% of the monthly limit)")
CFG(budget_fallback,       "BUDGET_FALLBACK_PROVIDER","",     ENUM, 0, 0, "offline", WK, "While the kill-switch is on, run queued jobs with this provider instead of waiting (unset: wait)")
CFG(rate_limit_ai_per_min, "RATE_LIMIT_AI_PER_MIN",  "20",    INT, 1, 1000000, NULL, GW, "AI submissions per user per minute, whole fleet")
CFG(rate_limit_ip_per_min, "RATE_LIMIT_IP_PER_MIN",  "600",   INT, 1, 100000000, NULL, GW, "API requests per client address per minute, whole fleet")

/* ---- Server-Sent Events (gateway) */
CFG(sse_heartbeat_ms, "SSE_HEARTBEAT_MS", "15000", INT, 100, 3600000, NULL, GW, "Heartbeat interval on idle streams")
CFG(sse_retry_ms,     "SSE_RETRY_MS",     "3000",  INT, 0, 600000, NULL, GW, "retry: hint sent to EventSource clients")
CFG(sse_max_queue,    "SSE_MAX_QUEUE",    "256",   INT, 1, 1000000, NULL, GW, "Frames queued for one slow stream before it is closed (client resumes from history)")
CFG(sse_fanout_threads, "SSE_FANOUT_THREADS", "0", INT, 0, 16, NULL, GW, "Threads that write one event to a job's many streams, the bus thread included (0: two per CPU core, at most 16)")

/* ---- profile and operators (gateway) */
CFG(profile_cache_ttl_s,   "PROFILE_CACHE_TTL",     "300", INT, 0, 86400, NULL, GW, "Seconds a profile stays cached in Redis")
CFG(manifest_url_template, "MANIFEST_URL_TEMPLATE", "/api/manifest/{userId}", STR, 0, 0, NULL, GW, "manifestUrl of a profile; {userId} is replaced")
CFG(alert_queue_high,      "ALERT_QUEUE_HIGH",      "50",  INT, 0, 100000000, NULL, GW, "queueDepthHigh when waiting jobs exceed this")
CFG(alert_queue_critical,  "ALERT_QUEUE_CRITICAL",  "100", INT, 0, 100000000, NULL, GW, "queueDepthCritical when waiting jobs exceed this")
CFG(alert_error_rate_high, "ALERT_ERROR_RATE_HIGH", "10",  INT, 0, 100, NULL, GW, "failureRateHigh when the fleet's 5xx rate (%) exceeds this")
CFG(alert_error_rate_critical, "ALERT_ERROR_RATE_CRITICAL", "20", INT, 0, 100, NULL, GW, "failureRateCritical when the fleet's 5xx rate (%) exceeds this")
CFG(worker_stall_seconds,  "WORKER_STALL_SECONDS",  "300", INT, 1, 86400, NULL, ALL, "workerStalled when jobs wait and no job finished for this long")
CFG(alert_error_min_requests, "ALERT_ERROR_MIN_REQUESTS", "20", INT, 0, 100000000, NULL, GW, "failureRateHigh/Critical only when the fleet's 5-minute window holds at least this many requests (a few requests make a noisy rate)")
CFG(metrics_flush_ms,      "METRICS_FLUSH_MS",      "1000", INT, 100, 60000, NULL, GW, "How often a gateway adds its request counters and SSE figures to the fleet-wide metrics in Redis")
