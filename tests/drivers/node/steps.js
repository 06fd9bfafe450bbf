// node-postgres (npm pg, pg-copy-streams) steps against HeliosProxy; see
// tests/drivers/README.md.
//
// usage: node steps.js STEP...   (connection from the DRV_* environment;
// NODE_PATH names the node_modules that `npm ci` of package-lock.json made)
// Prints "ok STEP" per step; on the first failure "FAIL STEP: error" and exits 1.
'use strict'

const crypto = require('crypto')
const { Readable, Writable } = require('stream')
const { pipeline } = require('stream/promises')
const pg = require('pg')
const copyStreams = require('pg-copy-streams')

const E = process.env
const TABLE = E.DRV_TABLE
const CHANNEL = E.DRV_CHANNEL
const NOTIFY_SECS = Number(E.DRV_NOTIFY_SECS || 10)

const params = () => ({
  host: E.DRV_HOST,
  port: Number(E.DRV_PORT),
  user: E.DRV_USER,
  password: E.DRV_PASSWORD,
  database: E.DRV_DB,
  // sslmode=require: TLS without certificate checks
  ssl: { rejectUnauthorized: false },
  connectionTimeoutMillis: 10000,
})

async function connect () {
  const c = new pg.Client(params())
  await c.connect()
  return c
}

function check (cond, what) {
  if (!cond) throw new Error(what)
}

const md5 = (b) => crypto.createHash('md5').update(b).digest('hex')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
// a timer that does not keep the process alive once everything else is done
const expire = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref())

const steps = {
  async connect (c) {
    check(c.connection.stream.encrypted === true, 'connection is not TLS')
    const r = await c.query('SELECT current_user AS u')
    check(r.rows[0].u === E.DRV_USER, 'current_user')
  },

  async prepared (c) {
    // a query with a name: Parse once, then Bind/Execute per call
    for (let i = 0; i < 3; i++) {
      const r = await c.query({ name: 'drv_s', text: "SELECT $1::int * 2 AS n, $2::text || '!' AS s", values: [i, `v${i}`] })
      check(r.rows[0].n === i * 2 && r.rows[0].s === `v${i}!`, `execute ${i}: ${JSON.stringify(r.rows)}`)
    }
  },

  async txn_commit (c) {
    await c.query('BEGIN')
    await c.query(`INSERT INTO ${TABLE} VALUES ($1, $2), ($3, $4)`, [1, 'a', 2, 'b'])
    await c.query('COMMIT')
    const r = await c.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id IN (1, 2)`)
    check(r.rows[0].n === 2, `committed rows ${r.rows[0].n}`)
  },

  async txn_rollback (c) {
    await c.query('BEGIN')
    await c.query(`INSERT INTO ${TABLE} VALUES ($1, $2)`, [3, 'c'])
    let r = await c.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 3`)
    check(r.rows[0].n === 1, 'row inside')
    await c.query('ROLLBACK')
    r = await c.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 3`)
    check(r.rows[0].n === 0, 'rolled back')
  },

  async copy_in (c) {
    const lines = []
    for (let i = 1000; i < 2000; i++) lines.push(`${i}\trow ${i}\n`)
    await pipeline(Readable.from(lines), c.query(copyStreams.from(`COPY ${TABLE} (id, v) FROM STDIN`)))
    const r = await c.query(`SELECT count(*)::int AS n, sum(id)::int AS s FROM ${TABLE} WHERE id BETWEEN 1000 AND 1999`)
    check(r.rows[0].n === 1000 && r.rows[0].s === 1499500, `copied rows ${JSON.stringify(r.rows)}`)
  },

  async copy_out (c) {
    const chunks = []
    const sink = new Writable({ write (chunk, _enc, cb) { chunks.push(chunk); cb() } })
    await pipeline(c.query(copyStreams.to("COPY (SELECT i, 'row ' || i FROM generate_series(1, 5000) i) TO STDOUT")), sink)
    const lines = Buffer.concat(chunks).toString().split('\n').slice(0, -1)
    check(lines.length === 5000 && lines[0] === '1\trow 1' && lines[4999] === '5000\trow 5000',
      `COPY OUT gave ${lines.length} lines`)
  },

  async cancel (c) {
    // node-postgres has no cancel method on a client: Client#cancel(other,
    // query) sends the CancelRequest of other's key from a new connection
    const t0 = Date.now()
    const query = new pg.Query('SELECT pg_sleep(60)')
    const done = new Promise((resolve, reject) => { query.on('end', resolve); query.on('error', reject) })
    c.query(query)
    await sleep(1000)
    new pg.Client(params()).cancel(c, query)
    try {
      await done
      throw new Error('pg_sleep(60) was not cancelled')
    } catch (e) {
      check(e.code === '57014', `SQLSTATE ${e.code}: ${e.message}`)
    }
    check(Date.now() - t0 < 30000, 'cancel took too long')
    const r = await c.query('SELECT 1 AS one')
    check(r.rows[0].one === 1, 'usable after cancel')
  },

  async notify (c) {
    const got = new Promise((resolve) => c.once('notification', resolve))
    await c.query(`LISTEN ${CHANNEL}`)
    const other = await connect()
    await other.query('SELECT pg_notify($1, $2)', [CHANNEL, 'hello node-pg'])
    await other.end()
    const n = await Promise.race([got, expire(NOTIFY_SECS * 1000).then(() => null)])
    check(n !== null, `no notification within ${NOTIFY_SECS} s`)
    check(n.channel === CHANNEL && n.payload === 'hello node-pg', `notification ${JSON.stringify(n)}`)
    await c.query(`UNLISTEN ${CHANNEL}`)
  },

  async large_result (c) {
    const r = await c.query("SELECT repeat('x', 1048576) AS t, convert_to(repeat('y', 1048576), 'UTF8') AS b")
    check(r.rows[0].t === 'x'.repeat(1048576), '1 MiB text result')
    check(r.rows[0].b.equals(Buffer.alloc(1048576, 'y')), '1 MiB bytea result')
  },

  param_small: (c) => roundtrip(c, 60000, 60000),
  param_70k: (c) => roundtrip(c, 70000, 70000),
  param_1mb: (c) => roundtrip(c, 1 << 20, 1 << 20),
}

async function roundtrip (c, textSize, byteaSize) {
  let text = ''
  for (let i = 0; i < textSize; i++) text += String.fromCharCode(97 + (i % 26))
  const blob = Buffer.alloc(byteaSize)
  for (let i = 0; i < byteaSize; i++) blob[i] = i & 255
  let r = await c.query('SELECT length($1::text) AS n, md5($1::text) AS h', [text])
  check(r.rows[0].n === textSize && r.rows[0].h === md5(text), `text of ${textSize}`)
  r = await c.query('SELECT length($1::bytea) AS n, md5($1::bytea) AS h', [blob])
  check(r.rows[0].n === byteaSize && r.rows[0].h === md5(blob), `bytea of ${byteaSize}`)
}

async function main () {
  let c = null
  for (const s of process.argv.slice(2)) {
    try {
      if (s === 'connect') c = await connect()
      if (!steps[s]) throw new Error(`unknown step ${s}`)
      await steps[s](c)
    } catch (e) {
      console.log(`FAIL ${s}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`)
      process.exit(1)
    }
    console.log(`ok ${s}`)
  }
  if (c) await c.end()
}

main()
