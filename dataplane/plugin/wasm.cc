/*
 * plugin.h on WABT's interpreter: a module is read and validated once
 * (ReadBinaryInterp -> ModuleDesc), each instance has its own Store, Module,
 * Instance, memory (capped) and Thread, and a hook runs in slices of
 * instructions so that both the instruction budget and the wall clock are
 * checked between slices. The only C++ file of the proxy: nothing leaves it
 * but the C API of plugin.h (no exception crosses it).
 */
/* C names: a function plugin_call beside struct plugin_call is fine in C */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
extern "C" {
#include "dataplane/plugin/plugin.h"
}
#pragma GCC diagnostic pop

#include <wabt/binary-reader.h>
#include <wabt/cast.h>
#include <wabt/error-formatter.h>
#include <wabt/interp/binary-reader-interp.h>
#include <wabt/interp/interp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <memory>
#include <new>
#include <string>

using namespace wabt;
using namespace wabt::interp;

/*
 * Thread::Run(n) runs n instructions of a call already pushed, but WABT
 * only pushes a call from Func::Call, which runs to the end. The members
 * that push a call, step one instruction and pop the results are private;
 * an explicit instantiation may name private members (C++17 [temp.explicit]
 * p14), which hands us pointers to them without patching WABT.
 */
namespace
{
template <typename Tag, typename Tag::type M> struct rob {
	friend typename Tag::type get(Tag)
	{
		return M;
	}
};
struct th_push {
	typedef RunResult (Thread::*type)(const DefinedFunc &, Trap::Ptr *);
	friend type get(th_push);
};
struct th_step {
	typedef RunResult (Thread::*type)(Trap::Ptr *);
	friend type get(th_step);
};
struct th_pop {
	typedef void (Thread::*type)(const ValueTypes &, Values *);
	friend type get(th_pop);
};
template struct rob<th_push, &Thread::PushCall>;
template struct rob<th_step, &Thread::StepInternal>;
template struct rob<th_pop, &Thread::PopValues>;
} // namespace

/* Instructions between two looks at the clock: ~50-200 us of interpreted
 * code, so a 100 ms limit is overrun by well under 1 %, and a no-op hook
 * reads the clock twice only. */
#define WASM_SLICE 8192
/* A module may not even start with more (whatever memory_mb says): this
 * bounds what loading a module for its checks allocates. */
#define WASM_MAX_INITIAL_PAGES 1024   /* 64 MiB */
#define WASM_CHECK_FUEL        100000 /* helios_abi_version at load */
#define WASM_LOG_MAX           4096   /* bytes of one log line */
#define WASM_LOG_PER_CALL      16
#define WASM_LOG_PER_SEC       1000
#define WASM_TIMEOUT_MAX_MS    100

enum host_fn { H_FIELD, H_DENY, H_REWRITE, H_HINT, H_LOG, H_COUNT };

static const char *const host_name[H_COUNT] = {"field", "deny", "rewrite", "hint", "log"};

static FuncType host_type(int h)
{
	const Type i = Type::I32;
	switch (h) {
	case H_FIELD:
		return FuncType({i, i, i}, {i});
	case H_DENY:
		return FuncType({i, i, i}, {});
	case H_REWRITE:
		return FuncType({i, i}, {});
	case H_HINT:
		return FuncType({i, i, i, i}, {i});
	default:
		return FuncType({i, i, i}, {});
	}
}

static const char *const hook_export_name[PLUGIN_HOOKS] = {"on_connection", "on_query_start",
                                                           "on_query_complete", "on_error"};

struct plugin_module {
	ModuleDesc desc;
	std::vector<int> import_host; /* per import: its host_fn */
	int hook[PLUGIN_HOOKS];       /* export index, -1 */
	int init, abi, memory;
};

struct plugin_instance {
	/* members die in reverse order: everything that roots an object in
	 * the store comes after it */
	Store store;
	const struct plugin_module *m = nullptr;
	Module::Ptr mod;
	Instance::Ptr inst;
	Memory::Ptr mem;
	DefinedFunc::Ptr hook[PLUGIN_HOOKS];
	DefinedFunc::Ptr init;
	std::unique_ptr<Thread> thread;
	struct plugin_limits lim = {};
	std::string config;
	Values results;

	/* a call failed: its thread may hold the torn frames of that call
	 * (a new call would return into them), so no call runs any more */
	bool broken = false;

	/* during a call */
	struct plugin_call *cur = nullptr;
	bool in_init = false;
	void (*log_fn)(void *, int, const char *, size_t) = nullptr;
	void *log_ud = nullptr;
	unsigned log_this_call = 0;
	uint64_t log_window = 0; /* second of the window */
	unsigned log_in_window = 0;
	uint64_t log_dropped = 0;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static std::string type_str(const FuncType &t)
{
	std::string s = "(";
	for (size_t i = 0; i < t.params.size(); i++)
		s += (i ? ", " : "") + std::string(t.params[i].GetName());
	s += ") -> (";
	for (size_t i = 0; i < t.results.size(); i++)
		s += (i ? ", " : "") + std::string(t.results[i].GetName());
	return s + ")";
}

static bool same_type(const FuncType &a, const FuncType &b)
{
	return a.params == b.params && a.results == b.results;
}

/* ---- host functions ---- */

/* [ptr, ptr+len) inside the instance's memory now (it may have grown). */
static uint8_t *mem_at(struct plugin_instance *in, uint32_t ptr, uint32_t len)
{
	if ((uint64_t)ptr + len > in->mem->ByteSize())
		return nullptr;
	return in->mem->UnsafeData() + ptr;
}

static Result host_trap(struct plugin_instance *in, Trap::Ptr *out_trap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static Result host_trap(struct plugin_instance *in, Trap::Ptr *out_trap, const char *fmt, ...)
{
	char buf[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	*out_trap = Trap::New(in->store, buf);
	return Result::Error;
}

static bool hook_may(struct plugin_instance *in, int h)
{
	if (in->in_init || !in->cur)
		return false;
	enum plugin_hook k = in->cur->hook;
	if (h == H_DENY)
		return k == PLUGIN_ON_CONNECTION || k == PLUGIN_ON_QUERY_START;
	return k == PLUGIN_ON_QUERY_START; /* rewrite, hint */
}

static const char *call_name(struct plugin_instance *in)
{
	if (in->in_init)
		return "helios_init";
	return in->cur ? plugin_hook_name(in->cur->hook) : "helios_abi_version";
}

static Result h_field(struct plugin_instance *in, const Values &p, Values &r, Trap::Ptr *t)
{
	uint32_t id = p[0].Get<u32>(), buf = p[1].Get<u32>(), cap = p[2].Get<u32>();
	const char *s = nullptr;
	size_t len = 0;
	if (id == PLUGIN_F_CONFIG && (in->in_init || !in->cur || !in->cur->field[id])) {
		s = in->config.data();
		len = in->config.size();
	} else if (id < PLUGIN_F_COUNT && in->cur && !in->in_init && in->cur->field[id]) {
		s = in->cur->field[id];
		len = in->cur->field_len[id];
	}
	if (!s) {
		r[0] = Value::Make((u32)-1);
		return Result::Ok;
	}
	size_t n = len < cap ? len : cap;
	uint8_t *dst = mem_at(in, buf, (uint32_t)n);
	if (!dst)
		return host_trap(in, t, "helios.field: buffer %u+%zu outside memory", buf, n);
	memcpy(dst, s, n);
	r[0] = Value::Make((u32)(len > INT32_MAX ? INT32_MAX : len));
	return Result::Ok;
}

static bool sqlstate_ok(const uint8_t *s)
{
	for (int i = 0; i < 5; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

static Result h_deny(struct plugin_instance *in, const Values &p, Values &r, Trap::Ptr *t)
{
	uint32_t sp = p[0].Get<u32>(), mp = p[1].Get<u32>(), ml = p[2].Get<u32>();
	if (!hook_may(in, H_DENY))
		return host_trap(in, t,
		                 "helios.deny called from %s (only on_connection and "
		                 "on_query_start may deny)",
		                 call_name(in));
	const uint8_t *ss = mem_at(in, sp, 5), *msg = mem_at(in, mp, ml);
	if (!ss || !msg)
		return host_trap(in, t, "helios.deny: pointer outside memory");
	if (!sqlstate_ok(ss))
		return host_trap(in, t, "helios.deny: SQLSTATE must be 5 of [0-9A-Z]");
	struct plugin_call *c = in->cur;
	memcpy(c->sqlstate, ss, 5);
	c->sqlstate[5] = 0;
	/* the message goes into an ErrorResponse field (NUL-terminated):
	 * control characters become spaces */
	size_t n = ml < sizeof(c->message) - 1 ? ml : sizeof(c->message) - 1;
	for (size_t i = 0; i < n; i++)
		c->message[i] = msg[i] < 0x20 || msg[i] == 0x7f ? ' ' : (char)msg[i];
	c->message[n] = 0;
	c->decision = PLUGIN_DENY;
	return Result::Ok;
}

static Result h_rewrite(struct plugin_instance *in, const Values &p, Values &r, Trap::Ptr *t)
{
	uint32_t sp = p[0].Get<u32>(), len = p[1].Get<u32>();
	if (!hook_may(in, H_REWRITE))
		return host_trap(in, t, "helios.rewrite called from %s (only on_query_start may)",
		                 call_name(in));
	const uint8_t *s = mem_at(in, sp, len);
	if (!s)
		return host_trap(in, t, "helios.rewrite: %u+%u outside memory", sp, len);
	if (len == 0 || memchr(s, 0, len))
		return host_trap(in, t, "helios.rewrite: empty SQL or SQL with a NUL byte");
	struct plugin_call *c = in->cur;
	char *copy = (char *)malloc((size_t)len + 1);
	if (!copy)
		return host_trap(in, t, "helios.rewrite: out of memory");
	memcpy(copy, s, len);
	copy[len] = 0;
	free(c->rewrite);
	c->rewrite = copy;
	c->rewrite_len = len;
	return Result::Ok;
}

static Result h_hint(struct plugin_instance *in, const Values &p, Values &r, Trap::Ptr *t)
{
	uint32_t kp = p[0].Get<u32>(), kl = p[1].Get<u32>(), vp = p[2].Get<u32>(),
	         vl = p[3].Get<u32>();
	if (!hook_may(in, H_HINT))
		return host_trap(in, t, "helios.hint called from %s (only on_query_start may)",
		                 call_name(in));
	const char *k = (const char *)mem_at(in, kp, kl), *v = (const char *)mem_at(in, vp, vl);
	if (!k || !v)
		return host_trap(in, t, "helios.hint: pointer outside memory");
	struct plugin_call *c = in->cur;
	int rc = -1;
	if (kl == 5 && !memcmp(k, "route", 5) && vl > 0 && vl < sizeof(c->route)) {
		rc = 0;
		for (uint32_t i = 0; i < vl; i++)
			if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
			      (v[i] >= '0' && v[i] <= '9') || v[i] == '_' || v[i] == '-' ||
			      v[i] == '.'))
				rc = -1;
		if (!rc) {
			memcpy(c->route, v, vl);
			c->route[vl] = 0;
		}
	} else if (kl == 5 && !memcmp(k, "cache", 5) && vl == 4 && !memcmp(v, "skip", 4)) {
		c->cache_skip = true;
		rc = 0;
	}
	r[0] = Value::Make((u32)rc);
	return Result::Ok;
}

static Result h_log(struct plugin_instance *in, const Values &p, Values &r, Trap::Ptr *t)
{
	int32_t level = (int32_t)p[0].Get<u32>();
	uint32_t mp = p[1].Get<u32>(), ml = p[2].Get<u32>();
	const char *msg = (const char *)mem_at(in, mp, ml);
	if (!msg)
		return host_trap(in, t, "helios.log: %u+%u outside memory", mp, ml);
	if (!in->log_fn)
		return Result::Ok;
	uint64_t sec = now_ns() / 1000000000u;
	if (sec != in->log_window) {
		if (in->log_dropped) {
			char note[96];
			int n = snprintf(note, sizeof(note),
			                 "plugin log: %llu lines dropped (over %d per second)",
			                 (unsigned long long)in->log_dropped, WASM_LOG_PER_SEC);
			in->log_fn(in->log_ud, 2, note, (size_t)n);
		}
		in->log_window = sec;
		in->log_in_window = 0;
		in->log_dropped = 0;
	}
	if (in->log_this_call >= WASM_LOG_PER_CALL || in->log_in_window >= WASM_LOG_PER_SEC) {
		in->log_dropped++;
		return Result::Ok;
	}
	in->log_this_call++;
	in->log_in_window++;
	level = level < 0 ? 0 : level > 3 ? 3 : level;
	in->log_fn(in->log_ud, level, msg, ml < WASM_LOG_MAX ? ml : WASM_LOG_MAX);
	return Result::Ok;
}

static HostFunc::Ptr make_host(struct plugin_instance *in, int h)
{
	typedef Result (*fn_t)(struct plugin_instance *, const Values &, Values &, Trap::Ptr *);
	static const fn_t fns[H_COUNT] = {h_field, h_deny, h_rewrite, h_hint, h_log};
	fn_t f = fns[h];
	return HostFunc::New(
	    in->store, host_type(h),
	    [in, f](Thread &, const Values &p, Values &r, Trap::Ptr *t) { return f(in, p, r, t); });
}

/* ---- running a function under the limits ---- */

/* Runs fn (() -> i32) on the instance's thread. */
static enum plugin_rc run(struct plugin_instance *in, DefinedFunc &fn, const plugin_limits &lim,
                          int32_t *ret, char *why, size_t whylen, uint64_t *elapsed,
                          uint64_t *instructions)
{
	Thread &th = *in->thread;
	Trap::Ptr trap;
	uint64_t start = now_ns();
	uint32_t tmo = lim.timeout_ms && lim.timeout_ms < WASM_TIMEOUT_MAX_MS ? lim.timeout_ms
	                                                                      : WASM_TIMEOUT_MAX_MS;
	uint64_t deadline = start + (uint64_t)tmo * 1000000u;
	uint64_t n = 0;
	enum plugin_rc rc = PLUGIN_OK;
	RunResult r = (th.*get(th_push()))(fn, &trap);
	while (r == RunResult::Ok) {
		uint64_t slice = WASM_SLICE;
		if (lim.fuel && lim.fuel - n < slice)
			slice = lim.fuel - n;
		uint64_t i = 0;
		for (; i < slice; i++) {
			r = (th.*get(th_step()))(&trap);
			if (r != RunResult::Ok) {
				i++;
				break;
			}
		}
		n += i;
		if (r != RunResult::Ok)
			break;
		if (lim.fuel && n >= lim.fuel) {
			rc = PLUGIN_BUDGET;
			set_err(why, whylen, "%s: over its budget of %llu instructions",
			        call_name(in), (unsigned long long)lim.fuel);
			break;
		}
		uint64_t t = now_ns();
		if (t >= deadline) {
			rc = PLUGIN_TIMEOUT;
			set_err(why, whylen,
			        "%s: over its %u ms limit (%llu instructions in %llu us)",
			        call_name(in), tmo, (unsigned long long)n,
			        (unsigned long long)((t - start) / 1000));
			break;
		}
	}
	*elapsed = now_ns() - start;
	*instructions = n;
	if (rc != PLUGIN_OK)
		return rc;
	if (r == RunResult::Return) {
		static const ValueTypes i32{Type::I32};
		(th.*get(th_pop()))(i32, &in->results);
		*ret = (int32_t)in->results[0].Get<u32>();
		return PLUGIN_OK;
	}
	set_err(why, whylen, "%s trapped: %s", call_name(in),
	        r == RunResult::Trap && trap ? trap->message().c_str() : "uncaught exception");
	return PLUGIN_TRAP;
}

/* ---- modules ---- */

static bool check_imports(struct plugin_module *m, char *err, size_t errlen)
{
	for (const ImportDesc &d : m->desc.imports) {
		const ImportType &it = d.type;
		if (it.module != "helios") {
			set_err(err, errlen, "imports %s.%s: plugins may import only helios.*",
			        it.module.c_str(), it.name.c_str());
			return false;
		}
		int h = 0;
		while (h < H_COUNT && it.name != host_name[h])
			h++;
		if (h == H_COUNT) {
			set_err(err, errlen,
			        "imports helios.%s: ABI v%d has field, deny, rewrite, hint, log",
			        it.name.c_str(), PLUGIN_ABI_VERSION);
			return false;
		}
		if (it.type->kind != ExternKind::Func) {
			set_err(err, errlen, "imports helios.%s as a %s, it is a function",
			        it.name.c_str(), GetName(it.type->kind));
			return false;
		}
		const FuncType &ft = *cast<FuncType>(it.type.get());
		FuncType want = host_type(h);
		if (!same_type(ft, want)) {
			set_err(err, errlen, "imports helios.%s with type %s, ABI v%d has %s",
			        it.name.c_str(), type_str(ft).c_str(), PLUGIN_ABI_VERSION,
			        type_str(want).c_str());
			return false;
		}
		m->import_host.push_back(h);
	}
	return true;
}

static bool check_exports(struct plugin_module *m, char *err, size_t errlen)
{
	const FuncType want({}, {Type::I32});
	m->init = m->abi = m->memory = -1;
	for (int h = 0; h < PLUGIN_HOOKS; h++)
		m->hook[h] = -1;
	size_t n_imported = m->import_host.size();
	for (size_t i = 0; i < m->desc.exports.size(); i++) {
		const ExportDesc &e = m->desc.exports[i];
		const std::string &name = e.type.name;
		int *slot = nullptr;
		if (name == "memory") {
			if (e.type.type->kind != ExternKind::Memory) {
				set_err(err, errlen, "exports \"memory\" as a %s, not a memory",
				        GetName(e.type.type->kind));
				return false;
			}
			m->memory = (int)i;
			continue;
		}
		if (name == "helios_abi_version")
			slot = &m->abi;
		else if (name == "helios_init")
			slot = &m->init;
		for (int h = 0; h < PLUGIN_HOOKS && !slot; h++)
			if (name == hook_export_name[h])
				slot = &m->hook[h];
		if (!slot)
			continue; /* other exports (__heap_base, ...) are the plugin's business */
		if (e.type.type->kind != ExternKind::Func) {
			set_err(err, errlen, "exports %s as a %s, not a function", name.c_str(),
			        GetName(e.type.type->kind));
			return false;
		}
		const FuncType &ft = *cast<FuncType>(e.type.type.get());
		if (!same_type(ft, want)) {
			set_err(err, errlen, "exports %s with type %s, ABI v%d wants () -> (i32)",
			        name.c_str(), type_str(ft).c_str(), PLUGIN_ABI_VERSION);
			return false;
		}
		if (e.index < n_imported) {
			set_err(err, errlen, "exports %s as an imported host function",
			        name.c_str());
			return false;
		}
		*slot = (int)i;
	}
	if (m->abi < 0) {
		set_err(err, errlen, "exports no helios_abi_version (not a HeliosProxy plugin?)");
		return false;
	}
	if (m->memory < 0) {
		set_err(err, errlen, "exports no memory (ABI v%d: the host copies fields into it)",
		        PLUGIN_ABI_VERSION);
		return false;
	}
	return true;
}

static struct plugin_instance *instance_new(const struct plugin_module *m, const char *config,
                                            const struct plugin_limits *lim, uint32_t cap_pages,
                                            bool call_init, char *err, size_t errlen);

extern "C" struct plugin_module *plugin_module_new(const uint8_t *wasm, size_t len, char *err,
                                                   size_t errlen)
try {
	if (!wasm || len < 8 || memcmp(wasm, "\0asm", 4)) {
		set_err(err, errlen, "not a WASM module (no \\0asm header)");
		return nullptr;
	}
	std::unique_ptr<plugin_module> m(new plugin_module());
	Features features; /* WABT's defaults: no threads, memory64, exceptions */
	ReadBinaryOptions opts(features, nullptr, false, true, false);
	Errors errors;
	if (Failed(ReadBinaryInterp("plugin.wasm", wasm, len, opts, &errors, &m->desc))) {
		std::string s = errors.empty() ? "unknown error" : errors[0].message;
		set_err(err, errlen, "not a valid WASM module: %s", s.c_str());
		return nullptr;
	}
	if (!m->desc.starts.empty()) {
		set_err(err, errlen,
		        "has a start function (it would run at every instantiation "
		        "without limits): build with --no-entry");
		return nullptr;
	}
	if (!check_imports(m.get(), err, errlen) || !check_exports(m.get(), err, errlen))
		return nullptr;
	if (m->desc.memories.size() != 1) {
		set_err(err, errlen, "defines %zu memories, the ABI wants one",
		        m->desc.memories.size());
		return nullptr;
	}
	const Limits &ml = m->desc.memories[0].type.limits;
	if (ml.initial > WASM_MAX_INITIAL_PAGES) {
		set_err(err, errlen,
		        "starts with %llu KiB of memory, over the %d MiB any plugin may",
		        (unsigned long long)ml.initial * 64, WASM_MAX_INITIAL_PAGES / 16);
		return nullptr;
	}
	/* instantiate once (no helios_init: the config is the instance's) to
	 * check that it links, its segments fit, and its ABI version */
	struct plugin_limits chk = {WASM_CHECK_FUEL, WASM_TIMEOUT_MAX_MS, 0};
	char why[200] = "";
	std::unique_ptr<plugin_instance> in(
	    instance_new(m.get(), "{}", &chk, WASM_MAX_INITIAL_PAGES, false, why, sizeof(why)));
	if (!in) {
		set_err(err, errlen, "%s", why);
		return nullptr;
	}
	int32_t ver = 0;
	uint64_t el, ni;
	DefinedFunc::Ptr abi =
	    in->store.UnsafeGet<DefinedFunc>(in->inst->exports()[(size_t)m->abi]);
	enum plugin_rc rc = run(in.get(), *abi, chk, &ver, why, sizeof(why), &el, &ni);
	if (rc != PLUGIN_OK) {
		set_err(err, errlen, "%s", why);
		return nullptr;
	}
	if (ver != PLUGIN_ABI_VERSION) {
		set_err(err, errlen, "ABI version %d, this proxy has %d", ver, PLUGIN_ABI_VERSION);
		return nullptr;
	}
	return m.release();
} catch (const std::exception &e) {
	set_err(err, errlen, "loading the module failed: %s", e.what());
	return nullptr;
}

extern "C" void plugin_module_free(struct plugin_module *m)
{
	delete m;
}

extern "C" bool plugin_module_has(const struct plugin_module *m, enum plugin_hook h)
{
	return m && (unsigned)h < PLUGIN_HOOKS && m->hook[h] >= 0;
}

/* ---- instances ---- */

static struct plugin_instance *instance_new(const struct plugin_module *m, const char *config,
                                            const struct plugin_limits *lim, uint32_t cap_pages,
                                            bool call_init, char *err, size_t errlen)
{
	std::unique_ptr<plugin_instance> in(new plugin_instance());
	in->m = m;
	in->lim = *lim;
	in->config = config ? config : "{}";

	/* the memory cap: the module's own maximum if lower, else ours, so
	 * memory.grow past it returns -1 like any failed grow */
	ModuleDesc d = m->desc;
	Limits &ml = d.memories[0].type.limits;
	if (ml.initial > cap_pages) {
		set_err(err, errlen,
		        "starts with %llu KiB of memory, over its memory_mb cap of %u KiB",
		        (unsigned long long)ml.initial * 64, cap_pages * 64);
		return nullptr;
	}
	if (!ml.has_max || ml.max > cap_pages) {
		ml.max = cap_pages;
		ml.has_max = true;
	}
	in->mod = Module::New(in->store, std::move(d));
	RefVec imports;
	for (int h : m->import_host)
		imports.push_back(make_host(in.get(), h).ref());
	Trap::Ptr trap;
	in->inst = Instance::Instantiate(in->store, in->mod.ref(), imports, &trap);
	if (!in->inst) {
		set_err(err, errlen, "instantiation failed: %s",
		        trap ? trap->message().c_str() : "unknown");
		return nullptr;
	}
	const RefVec &ex = in->inst->exports();
	in->mem = in->store.UnsafeGet<Memory>(ex[(size_t)m->memory]);
	for (int h = 0; h < PLUGIN_HOOKS; h++)
		if (m->hook[h] >= 0)
			in->hook[h] = in->store.UnsafeGet<DefinedFunc>(ex[(size_t)m->hook[h]]);
	if (m->init >= 0)
		in->init = in->store.UnsafeGet<DefinedFunc>(ex[(size_t)m->init]);
	in->thread.reset(new Thread(in->store));
	in->results.reserve(1);

	if (call_init && in->init) {
		char why[160] = "";
		int32_t ret = 0;
		uint64_t el, ni;
		in->in_init = true;
		enum plugin_rc rc =
		    run(in.get(), *in->init, in->lim, &ret, why, sizeof(why), &el, &ni);
		in->in_init = false;
		if (rc != PLUGIN_OK) {
			set_err(err, errlen, "%s", why);
			return nullptr;
		}
		if (ret != 0) {
			set_err(err, errlen, "helios_init returned %d (the config refused?)", ret);
			return nullptr;
		}
	}
	return in.release();
}

extern "C" struct plugin_instance *plugin_instance_new(const struct plugin_module *m,
                                                       const char *config_json,
                                                       const struct plugin_limits *lim, char *err,
                                                       size_t errlen)
try {
	if (!m || !lim) {
		set_err(err, errlen, "no module");
		return nullptr;
	}
	/* 16 pages of 64 KiB per MiB; wasm32 addresses 65536 pages at most */
	uint64_t cap = (uint64_t)lim->memory_mb * 16u;
	if (cap > 65536u)
		cap = 65536u;
	return instance_new(m, config_json, lim, (uint32_t)cap, true, err, errlen);
} catch (const std::exception &e) {
	set_err(err, errlen, "instantiation failed: %s", e.what());
	return nullptr;
}

extern "C" void plugin_instance_free(struct plugin_instance *in)
{
	delete in;
}

extern "C" enum plugin_rc
plugin_call(struct plugin_instance *in, struct plugin_call *c,
            void (*log_fn)(void *ud, int level, const char *msg, size_t len), void *ud)
{
	c->decision = PLUGIN_CONTINUE;
	c->sqlstate[0] = 0;
	c->message[0] = 0;
	c->rewrite = nullptr;
	c->rewrite_len = 0;
	c->route[0] = 0;
	c->cache_skip = false;
	c->trap[0] = 0;
	c->elapsed_ns = 0;
	c->instructions = 0;
	if ((unsigned)c->hook >= PLUGIN_HOOKS || !in->hook[c->hook])
		return PLUGIN_ABSENT;
	if (in->broken) {
		set_err(c->trap, sizeof(c->trap), "%s: instance not rebuilt after a failed call",
		        plugin_hook_name(c->hook));
		return PLUGIN_TRAP;
	}
	in->cur = c;
	in->log_fn = log_fn;
	in->log_ud = ud;
	in->log_this_call = 0;
	int32_t ret = 0;
	enum plugin_rc rc;
	try {
		rc = run(in, *in->hook[c->hook], in->lim, &ret, c->trap, sizeof(c->trap),
		         &c->elapsed_ns, &c->instructions);
	} catch (const std::exception &e) {
		set_err(c->trap, sizeof(c->trap), "%s: %s", plugin_hook_name(c->hook), e.what());
		rc = PLUGIN_TRAP;
	}
	in->cur = nullptr;
	in->log_fn = nullptr;
	if (rc != PLUGIN_OK) {
		in->broken = true;
		/* a failed call decides nothing: its outputs are dropped */
		free(c->rewrite);
		c->rewrite = nullptr;
		c->rewrite_len = 0;
		c->decision = PLUGIN_CONTINUE;
		c->route[0] = 0;
		c->cache_skip = false;
		c->sqlstate[0] = 0;
		c->message[0] = 0;
		return rc;
	}
	if (c->hook == PLUGIN_ON_QUERY_COMPLETE || c->hook == PLUGIN_ON_ERROR)
		c->decision = PLUGIN_CONTINUE;
	else if (ret != 0)
		c->decision = PLUGIN_DENY;
	return PLUGIN_OK;
}

extern "C" const char *plugin_hook_name(enum plugin_hook h)
{
	return (unsigned)h < PLUGIN_HOOKS ? hook_export_name[h] : "?";
}

extern "C" const char *plugin_rc_name(enum plugin_rc rc)
{
	switch (rc) {
	case PLUGIN_OK:
		return "ok";
	case PLUGIN_TRAP:
		return "trap";
	case PLUGIN_TIMEOUT:
		return "timeout";
	case PLUGIN_BUDGET:
		return "budget";
	case PLUGIN_ABSENT:
		return "absent";
	}
	return "?";
}
