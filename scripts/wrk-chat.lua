-- wrk script: POST a small OpenAI chat completion request over keep-alive connections.
--   wrk -t1 -c32 -d10s -s scripts/wrk-chat.lua http://127.0.0.1:PORT/v1/chat/completions
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"glm-4.7","messages":[{"role":"user","content":"Say hello."}]}'
