// Sends Segment messages to The Eye's ingest through the real @segment/analytics-node.
//
//     node send.js batch|alone < messages.json
//
// batch: the SDK's default batching (up to 15 messages per request, sent together by
// closeAndFlush); alone: one message per request (flushAt: 1). Both go through the SDK's
// own retry and backoff.
//
// stdin: a JSON array of messages in Segment's spec (type, userId, anonymousId, event,
// name, properties, traits, groupId, previousId, context, messageId, timestamp).
// Environment: EYE_INGEST_URL (the SDK's host) and EYE_WRITE_KEY (a client's API key).
//
// stdout: one JSON object: the messageId the SDK gave each message, in order, every HTTP
// answer the SDK received (status, messages in the request, auth scheme), and the
// messages whose delivery the SDK gave up on. Exits 1 when any delivery failed.
'use strict'

const { Analytics } = require('@segment/analytics-node')

const TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias']

async function readStdin() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

async function main() {
  const mode = process.argv[2]
  if (mode !== 'batch' && mode !== 'alone') {
    throw new Error('usage: node send.js batch|alone < messages.json')
  }
  const messages = await readStdin()
  const settings = {
    writeKey: process.env.EYE_WRITE_KEY,
    host: process.env.EYE_INGEST_URL,
  }
  if (mode === 'alone') settings.flushAt = 1
  const analytics = new Analytics(settings)

  // Every request the SDK sends (its retries too) and the answer it gets, paired by the
  // body: each attempt's body is unique, as it carries the attempt's sentAt.
  const requests = new Map()
  const responses = []
  analytics.on('http_request', (req) => requests.set(req.body, req))
  analytics.on('http_response', (res) => {
    const req = requests.get(res.body)
    requests.delete(res.body)
    const answer = {
      status: res.status,
      method: req.method,
      url: res.url,
      messages: JSON.parse(res.body).batch.length,
      gzip: Boolean(req.headers['Content-Encoding']),
      auth: (req.headers.Authorization || '').split(' ')[0],
    }
    responses.push(answer)
    // As it happens, so that a run stopped for taking too long still tells why.
    console.error(`answer ${JSON.stringify(answer)}`)
  })

  const sent = []
  const failed = []
  const delivered = []
  for (const message of messages) {
    const { type, ...fields } = message
    if (!TYPES.includes(type)) {
      throw new Error(`message type ${JSON.stringify(type)} is not one of ${TYPES}`)
    }
    const entry = { type, messageId: null }
    sent.push(entry)
    delivered.push(
      new Promise((resolve) => {
        analytics[type](fields, (err, ctx) => {
          // The SDK generates the messageId when the caller gives none.
          entry.messageId = ctx ? ctx.event.messageId : fields.messageId || null
          if (err) failed.push({ messageId: entry.messageId, error: String(err.reason || err) })
          resolve()
        })
      }),
    )
  }
  // closeAndFlush resolves once every message was delivered or given up on.
  await analytics.closeAndFlush()
  await Promise.all(delivered)

  process.stdout.write(
    JSON.stringify({ sdk: 'analytics-node', mode, sent, responses, failed }) + '\n',
  )
  return failed.length ? 1 : 0
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    console.error(err)
    process.exitCode = 2
  },
)
