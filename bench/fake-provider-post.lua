-- wrk script: POST a small Chat Completions request to the fake provider.
--   build-x/tests/support/fake-provider --port 18080 &
--   wrk -t2 -c64 -d10s -s bench/fake-provider-post.lua http://127.0.0.1:18080/v1/chat/completions
-- Add  -H 'X-Fake-Action: {"action":"status","status":500}'  (or any step) to
-- measure a fault path instead of the default "ok".
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"gpt-4o-mini","response_format":{"type":"json_object"},' ..
           '"max_tokens":2000,"temperature":0.7,"messages":[' ..
           '{"role":"system","content":"You create flashcards. Answer in JSON."},' ..
           '{"role":"user","content":"Photosynthesis converts sunlight into chemical energy inside chloroplasts."}]}'

done = function(summary, latency, requests)
  io.write(string.format("requests/s: %.0f  p50: %.2f ms  p99: %.2f ms  non-2xx: %d  socket errors: %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
