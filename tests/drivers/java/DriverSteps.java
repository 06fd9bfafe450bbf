// PostgreSQL JDBC driver (pgjdbc) steps against HeliosProxy; see
// tests/drivers/README.md.
//
// usage: java -cp build/drivers/java:/usr/share/java/postgresql.jar DriverSteps STEP...
// (connection from the DRV_* environment). Prints "ok STEP" per step; on the
// first failure "FAIL STEP: error" and exits 1.

import java.io.ByteArrayOutputStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;

public class DriverSteps {
    static final String TABLE = System.getenv("DRV_TABLE");
    static final String CHANNEL = System.getenv("DRV_CHANNEL");
    static final double NOTIFY_SECS =
            Double.parseDouble(System.getenv().getOrDefault("DRV_NOTIFY_SECS", "10"));

    static Connection connect() throws SQLException {
        String url = "jdbc:postgresql://" + System.getenv("DRV_HOST") + ":" + System.getenv("DRV_PORT")
                + "/" + System.getenv("DRV_DB");
        Properties p = new Properties();
        p.setProperty("user", System.getenv("DRV_USER"));
        p.setProperty("password", System.getenv("DRV_PASSWORD"));
        p.setProperty("sslmode", "require"); // TLS, no certificate check (NonValidatingFactory)
        p.setProperty("connectTimeout", "10");
        p.setProperty("prepareThreshold", "1"); // named server statements from the first use
        return DriverManager.getConnection(url, p);
    }

    static void check(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    static String md5(byte[] b) throws Exception {
        StringBuilder sb = new StringBuilder();
        for (byte x : MessageDigest.getInstance("MD5").digest(b)) sb.append(String.format("%02x", x));
        return sb.toString();
    }

    static long scalar(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    static void stepConnect(Connection c) throws Exception {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT current_user")) {
            rs.next();
            check(rs.getString(1).equals(System.getenv("DRV_USER")), "current_user");
        }
    }

    static void stepPrepared(Connection c) throws Exception {
        try (PreparedStatement ps = c.prepareStatement("SELECT ?::int * 2, ?::text || '!'")) {
            for (int i = 0; i < 5; i++) {
                ps.setInt(1, i);
                ps.setString(2, "v" + i);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    check(rs.getInt(1) == i * 2 && rs.getString(2).equals("v" + i + "!"), "execute " + i);
                }
            }
            check(ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare(), "not server-prepared");
        }
    }

    // PreparedStatement.close(): pgjdbc sends Close for its named statement
    // with the next query; the connection goes on preparing new ones.
    static void stepDeallocate(Connection c) throws Exception {
        for (int k = 1; k <= 2; k++) {
            PreparedStatement ps = c.prepareStatement("SELECT ?::int + " + k);
            for (int i = 0; i < 3; i++) {
                ps.setInt(1, i);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    check(rs.getInt(1) == i + k, "execute " + i);
                }
            }
            ps.close();
        }
        check(scalar(c, "SELECT 3") == 3, "query after Close");
    }

    static void stepTxnCommit(Connection c) throws Exception {
        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + TABLE + " VALUES (?, ?)")) {
            ps.setInt(1, 1);
            ps.setString(2, "a");
            ps.executeUpdate();
            ps.setInt(1, 2);
            ps.setString(2, "b");
            ps.executeUpdate();
        }
        c.commit();
        c.setAutoCommit(true);
        check(scalar(c, "SELECT count(*) FROM " + TABLE + " WHERE id IN (1, 2)") == 2, "committed rows");
    }

    static void stepTxnRollback(Connection c) throws Exception {
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.executeUpdate("INSERT INTO " + TABLE + " VALUES (3, 'c')");
        }
        check(scalar(c, "SELECT count(*) FROM " + TABLE + " WHERE id = 3") == 1, "row inside");
        c.rollback();
        c.setAutoCommit(true);
        check(scalar(c, "SELECT count(*) FROM " + TABLE + " WHERE id = 3") == 0, "rolled back");
    }

    static void stepCopyIn(Connection c) throws Exception {
        StringBuilder sb = new StringBuilder();
        long sum = 0;
        for (int i = 1000; i < 2000; i++) {
            sb.append(i).append("\trow ").append(i).append('\n');
            sum += i;
        }
        CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
        long n = cm.copyIn("COPY " + TABLE + " (id, v) FROM STDIN", new StringReader(sb.toString()));
        check(n == 1000, "COPY IN count " + n);
        check(scalar(c, "SELECT count(*) FROM " + TABLE + " WHERE id BETWEEN 1000 AND 1999") == 1000, "rows");
        check(scalar(c, "SELECT sum(id) FROM " + TABLE + " WHERE id BETWEEN 1000 AND 1999") == sum, "sum");
    }

    static void stepCopyOut(Connection c) throws Exception {
        CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        cm.copyOut("COPY (SELECT i, 'row ' || i FROM generate_series(1, 5000) i) TO STDOUT", out);
        String[] lines = out.toString(StandardCharsets.UTF_8).split("\n");
        check(lines.length == 5000 && lines[0].equals("1\trow 1") && lines[4999].equals("5000\trow 5000"),
                "COPY OUT gave " + lines.length + " lines");
    }

    static void stepCancel(Connection c) throws Exception {
        long t0 = System.nanoTime();
        try (Statement st = c.createStatement()) {
            Thread t = new Thread(() -> {
                try {
                    Thread.sleep(1000);
                    st.cancel(); // a CancelRequest on a new connection
                } catch (Exception e) {
                    System.err.println("cancel: " + e);
                }
            });
            t.start();
            try {
                st.executeQuery("SELECT pg_sleep(60)");
                throw new AssertionError("pg_sleep(60) was not cancelled");
            } catch (SQLException e) {
                check("57014".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
            }
            t.join();
        }
        check((System.nanoTime() - t0) / 1e9 < 30, "cancel took too long");
        check(scalar(c, "SELECT 1") == 1, "usable after cancel");
    }

    static void stepNotify(Connection c) throws Exception {
        try (Statement st = c.createStatement()) {
            st.execute("LISTEN " + CHANNEL); // pgjdbc: extended protocol
        }
        try (Connection other = connect(); PreparedStatement ps = other.prepareStatement("SELECT pg_notify(?, ?)")) {
            ps.setString(1, CHANNEL);
            ps.setString(2, "hello jdbc");
            ps.executeQuery().close();
        }
        PGConnection pc = c.unwrap(PGConnection.class);
        long deadline = System.nanoTime() + (long) (NOTIFY_SECS * 1e9);
        while (System.nanoTime() < deadline) {
            PGNotification[] ns = pc.getNotifications(1000); // waits on the socket up to 1 s
            if (ns != null && ns.length > 0) {
                check(ns[0].getName().equals(CHANNEL) && ns[0].getParameter().equals("hello jdbc"),
                        "notification " + ns[0].getName() + " " + ns[0].getParameter());
                try (Statement st = c.createStatement()) {
                    st.execute("UNLISTEN " + CHANNEL);
                }
                return;
            }
        }
        throw new AssertionError("no notification within " + NOTIFY_SECS + " s");
    }

    static void stepLargeResult(Connection c) throws Exception {
        try (Statement st = c.createStatement();
                ResultSet rs = st.executeQuery("SELECT repeat('x', 1048576), convert_to(repeat('y', 1048576), 'UTF8')")) {
            rs.next();
            check(rs.getString(1).equals("x".repeat(1048576)), "1 MiB text result");
            byte[] b = rs.getBytes(2);
            boolean ok = b.length == 1048576;
            for (int i = 0; ok && i < b.length; i++) ok = b[i] == 'y';
            check(ok, "1 MiB bytea result");
        }
    }

    static void roundtrip(Connection c, int textSize, int byteaSize) throws Exception {
        StringBuilder sb = new StringBuilder(textSize);
        for (int i = 0; i < textSize; i++) sb.append((char) ('a' + i % 26));
        String text = sb.toString();
        byte[] blob = new byte[byteaSize];
        for (int i = 0; i < byteaSize; i++) blob[i] = (byte) i;
        try (PreparedStatement ps = c.prepareStatement("SELECT length(?::text), md5(?::text)")) {
            ps.setString(1, text);
            ps.setString(2, text);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                check(rs.getInt(1) == textSize && rs.getString(2).equals(md5(text.getBytes(StandardCharsets.UTF_8))),
                        "text of " + textSize);
            }
        }
        try (PreparedStatement ps = c.prepareStatement("SELECT length(?::bytea), md5(?::bytea)")) {
            ps.setBytes(1, blob);
            ps.setBytes(2, blob);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                check(rs.getInt(1) == byteaSize && rs.getString(2).equals(md5(blob)), "bytea of " + byteaSize);
            }
        }
    }

    public static void main(String[] args) {
        Connection c = null;
        for (String s : args) {
            try {
                switch (s) {
                    case "connect": c = connect(); stepConnect(c); break;
                    case "prepared": stepPrepared(c); break;
                    case "deallocate": stepDeallocate(c); break;
                    case "txn_commit": stepTxnCommit(c); break;
                    case "txn_rollback": stepTxnRollback(c); break;
                    case "copy_in": stepCopyIn(c); break;
                    case "copy_out": stepCopyOut(c); break;
                    case "cancel": stepCancel(c); break;
                    case "notify": stepNotify(c); break;
                    case "large_result": stepLargeResult(c); break;
                    // each value is sent twice in one Bind: 2 x 30,000 stays under 64 KiB
                    case "param_small": roundtrip(c, 30_000, 30_000); break;
                    case "param_70k": roundtrip(c, 70_000, 70_000); break;
                    case "param_1mb": roundtrip(c, 1 << 20, 1 << 20); break;
                    default: throw new IllegalArgumentException("unknown step " + s);
                }
            } catch (Throwable e) {
                System.out.println("FAIL " + s + ": " + e);
                System.out.flush();
                System.exit(1);
            }
            System.out.println("ok " + s);
            System.out.flush();
        }
        try {
            if (c != null) c.close();
        } catch (SQLException e) {
            System.out.println("FAIL close: " + e);
            System.exit(1);
        }
    }
}
