# ruby-pg (libpq) driver steps against HeliosProxy; see tests/drivers/README.md.
#
# usage: ruby steps.rb STEP...   (connection from the DRV_* environment)
# Prints "ok STEP" per step; on the first failure "FAIL STEP: error" and exits 1.

require 'digest'
require 'pg'

TABLE = ENV.fetch('DRV_TABLE')
CHANNEL = ENV.fetch('DRV_CHANNEL')
NOTIFY_SECS = Float(ENV.fetch('DRV_NOTIFY_SECS', '10'))

def connect
  PG.connect(host: ENV.fetch('DRV_HOST'), port: ENV.fetch('DRV_PORT'), user: ENV.fetch('DRV_USER'),
             password: ENV.fetch('DRV_PASSWORD'), dbname: ENV.fetch('DRV_DB'), sslmode: 'require',
             connect_timeout: 10)
end

def check(cond, what)
  raise what unless cond
end

def step_connect(c)
  check(c.ssl_in_use?, 'connection is not TLS')
  check(c.exec('SELECT current_user').getvalue(0, 0) == ENV.fetch('DRV_USER'), 'current_user')
end

def step_prepared(c)
  c.prepare('drv_s', "SELECT $1::int * 2, $2::text || '!'") # Parse of a named statement
  3.times do |i|
    r = c.exec_prepared('drv_s', [i, "v#{i}"])
    check(r.values == [[(i * 2).to_s, "v#{i}!"]], "execute #{i}: #{r.values}")
  end
end

# ruby-pg 1.4 has no PQclosePrepared: SQL DEALLOCATE is how it drops a
# statement it prepared with Parse; the name is then free for another text.
def step_deallocate(c)
  c.prepare('drv_d', 'SELECT 1')
  check(c.exec_prepared('drv_d').getvalue(0, 0) == '1', 'execute drv_d')
  c.exec('DEALLOCATE drv_d')
  c.prepare('drv_d', 'SELECT 2')
  check(c.exec_prepared('drv_d').getvalue(0, 0) == '2', 'execute drv_d after DEALLOCATE')
  c.exec('DEALLOCATE drv_d')
end

def count(c, where)
  c.exec_params("SELECT count(*) FROM #{TABLE} WHERE #{where}").getvalue(0, 0).to_i
end

def step_txn_commit(c)
  c.transaction do |t|
    t.exec_params("INSERT INTO #{TABLE} VALUES ($1, $2), ($3, $4)", [1, 'a', 2, 'b'])
  end
  check(count(c, 'id IN (1, 2)') == 2, 'committed rows')
end

def step_txn_rollback(c)
  c.exec('BEGIN')
  c.exec_params("INSERT INTO #{TABLE} VALUES ($1, $2)", [3, 'c'])
  check(count(c, 'id = 3') == 1, 'row inside')
  c.exec('ROLLBACK')
  check(count(c, 'id = 3').zero?, 'rolled back')
end

def step_copy_in(c)
  c.copy_data("COPY #{TABLE} (id, v) FROM STDIN") do
    (1000...2000).each { |i| c.put_copy_data("#{i}\trow #{i}\n") }
  end
  r = c.exec("SELECT count(*), sum(id) FROM #{TABLE} WHERE id BETWEEN 1000 AND 1999")
  check(r.values == [['1000', (1000...2000).sum.to_s]], "copied rows #{r.values}")
end

def step_copy_out(c)
  lines = []
  c.copy_data("COPY (SELECT i, 'row ' || i FROM generate_series(1, 5000) i) TO STDOUT") do
    while (row = c.get_copy_data)
      lines << row
    end
  end
  check(lines.size == 5000 && lines[0] == "1\trow 1\n" && lines[-1] == "5000\trow 5000\n",
        "COPY OUT gave #{lines.size} lines")
end

def step_cancel(c)
  t0 = Time.now
  canceller = Thread.new do
    sleep 1
    c.cancel # PQcancel: a CancelRequest on a new connection
  end
  begin
    c.exec('SELECT pg_sleep(60)')
    raise 'pg_sleep(60) was not cancelled'
  rescue PG::QueryCanceled => e
    check(e.result.error_field(PG::Result::PG_DIAG_SQLSTATE) == '57014', "SQLSTATE of #{e}")
  end
  err = canceller.value
  check(err.nil?, "cancel: #{err}")
  check(Time.now - t0 < 30, 'cancel took too long')
  check(c.exec('SELECT 1').getvalue(0, 0) == '1', 'usable after cancel')
end

def step_notify(c)
  c.exec("LISTEN #{CHANNEL}")
  other = connect
  other.exec_params('SELECT pg_notify($1, $2)', [CHANNEL, 'hello ruby-pg'])
  other.close
  got = nil
  c.wait_for_notify(NOTIFY_SECS) { |ch, _pid, payload| got = [ch, payload] }
  check(got == [CHANNEL, 'hello ruby-pg'], "notification #{got.inspect}")
  c.exec("UNLISTEN #{CHANNEL}")
end

def step_large_result(c)
  r = c.exec("SELECT repeat('x', 1048576), convert_to(repeat('y', 1048576), 'UTF8')")
  check(r.getvalue(0, 0) == 'x' * 1_048_576, '1 MiB text result')
  check(c.unescape_bytea(r.getvalue(0, 1)) == 'y' * 1_048_576, '1 MiB bytea result')
end

def roundtrip(c, text_size, bytea_size)
  text = (0...text_size).map { |i| (97 + i % 26).chr }.join
  blob = (0...bytea_size).map { |i| i % 256 }.pack('C*')
  r = c.exec_params('SELECT length($1::text), md5($1::text)', [text])
  check(r.values == [[text_size.to_s, Digest::MD5.hexdigest(text)]], "text of #{text_size}")
  # a binary-format parameter
  r = c.exec_params('SELECT length($1::bytea), md5($1::bytea)', [{ value: blob, format: 1 }])
  check(r.values == [[bytea_size.to_s, Digest::MD5.hexdigest(blob)]], "bytea of #{bytea_size}")
end

STEPS = {
  'prepared' => method(:step_prepared), 'deallocate' => method(:step_deallocate),
  'txn_commit' => method(:step_txn_commit),
  'txn_rollback' => method(:step_txn_rollback), 'copy_in' => method(:step_copy_in),
  'copy_out' => method(:step_copy_out), 'cancel' => method(:step_cancel),
  'notify' => method(:step_notify), 'large_result' => method(:step_large_result),
  'param_small' => ->(c) { roundtrip(c, 60_000, 60_000) },
  'param_70k' => ->(c) { roundtrip(c, 70_000, 70_000) },
  'param_1mb' => ->(c) { roundtrip(c, 1 << 20, 1 << 20) }
}.freeze

conn = nil
ARGV.each do |s|
  begin
    if s == 'connect'
      conn = connect
      step_connect(conn)
    else
      STEPS.fetch(s).call(conn)
    end
  rescue StandardError => e
    puts "FAIL #{s}: #{e.class}: #{e.message.strip}"
    exit 1
  end
  puts "ok #{s}"
  $stdout.flush
end
conn&.close
