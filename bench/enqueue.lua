-- wrk script: POST /api/ai/generate-flashcards (or the path in the URL) with
-- a different user and a different document on every request, so that the
-- idempotency check never hits and every request creates a job.  The
-- gateway runs in its development identity mode (no AUTH_JWT_SECRET): the
-- user comes from the body's userId.
--
--   wrk -t2 -c50 -d10s --latency -s bench/enqueue.lua \
--       http://127.0.0.1:3001/api/ai/generate-flashcards
--
-- Env: ENQUEUE_USERS (distinct users, default 10000), ENQUEUE_CONTENT_BYTES
-- (approximate document size, default 600).
-- bench/enqueue.sh runs it beside GET /health and prints the comparison.

local threads = {}
local users = tonumber(os.getenv("ENQUEUE_USERS") or "10000")
local want = tonumber(os.getenv("ENQUEUE_CONTENT_BYTES") or "600")

local text = "Die Katze schlaeft auf dem Sofa, waehrend der Hund im Garten mit dem roten Ball spielt. " ..
             "Photosynthesis converts sunlight into chemical energy inside the chloroplasts of plant cells. "
local doc = text
while #doc < want do doc = doc .. text end
doc = doc:sub(1, want)

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  prefix = string.format("%d-%d-%d", tid or 0, os.time(), math.random(1, 1e9))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"content":"%s (%s-%d)","subject":"German","topic":"Animals","userId":"bench-user-%d",' ..
    '"nativeLanguage":"English","targetLanguage":"German"}',
    doc, prefix, counter, (counter * 7919 + (tid or 0)) % users)
  return wrk.format(nil, nil, nil, body)
end
