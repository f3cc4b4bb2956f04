/*
 * Runtime images with packages (docs/packages.md), measured in one process:
 *   - building a runtime: the default one, and one with SITE's packages
 *     and jinja2 imported at build time; saving each to a file;
 *   - loading each image file (eryx_runtime_new with image_path), and the
 *     first sandbox + `pass` of a loaded runtime;
 *   - new sandboxes and their first `pass`, from the default runtime and
 *     from the one with jinja2 (the same microseconds?);
 *   - "a fresh sandbox, import jinja2, render a template", from a runtime
 *     with the packages but nothing imported ("plain") and from the one
 *     with jinja2 imported at build time ("preimported"): sandbox creation,
 *     the run and the free, median of REPEATS.
 * usage: bench_image SITE_DIR [repeats]     (SITE_DIR holds jinja2 and
 * markupsafe). Prints one JSON object (milliseconds).
 */
#include <eryx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "%s: %s: %s\n", what, eryx_errstr(rc), eryx_errmsg(NULL));
    exit(1);
}

static const char render_code[] =
    "import jinja2\n"
    "t = jinja2.Environment(autoescape=True).from_string(\n"
    "    '<ul>{% for u in users %}<li>{{ u.name }} ({{ u.age }})</li>{% endfor %}</ul>')\n"
    "out = t.render(users=[{'name': '<n%d>' % i, 'age': i} for i in range(20)])\n"
    "assert out.startswith('<ul><li>&lt;n0&gt; (0)</li>'), out[:40]\n";

/* Sandbox + run + free, repeats times: the median of the whole, and of
 * the run alone. */
static void fresh_runs(eryx_runtime *rt, int repeats, double *whole, double *run_only)
{
    double *w = calloc((size_t)repeats, sizeof *w), *r = calloc((size_t)repeats, sizeof *r);
    for (int i = 0; i < repeats; i++) {
        double t0 = now_ms();
        eryx_sandbox *sb;
        int rc = eryx_sandbox_new(rt, NULL, &sb);
        if (rc != ERYX_OK)
            die("sandbox_new", rc);
        double t1 = now_ms();
        eryx_result *res = NULL;
        rc = eryx_sandbox_run(sb, render_code, strlen(render_code), &res);
        if (rc != ERYX_OK) {
            fprintf(stderr, "%s", res && res->traceback ? res->traceback : "");
            die("run", rc);
        }
        double t2 = now_ms();
        eryx_result_free(res);
        eryx_sandbox_free(sb);
        double t3 = now_ms();
        w[i] = t3 - t0;
        r[i] = t2 - t1;
    }
    *whole = median(w, repeats);
    *run_only = median(r, repeats);
    free(w);
    free(r);
}

/* New sandboxes (all alive at once, so none reuses a freed one's
 * instance) and their first `pass`: medians, in microseconds. */
#define COLD 20
static void cold_sandboxes(eryx_runtime *rt, double *new_us, double *first_us)
{
    eryx_sandbox *sb[COLD];
    double n[COLD], f[COLD];
    for (int i = 0; i < COLD; i++) {
        double t0 = now_ms();
        int rc = eryx_sandbox_new(rt, NULL, &sb[i]);
        if (rc != ERYX_OK)
            die("sandbox_new", rc);
        double t1 = now_ms();
        eryx_result *res = NULL;
        if ((rc = eryx_sandbox_run(sb[i], "pass", 4, &res)) != ERYX_OK)
            die("pass", rc);
        double t2 = now_ms();
        eryx_result_free(res);
        n[i] = (t1 - t0) * 1000;
        f[i] = (t2 - t1) * 1000;
    }
    for (int i = 0; i < COLD; i++)
        eryx_sandbox_free(sb[i]);
    *new_us = median(n, COLD);
    *first_us = median(f, COLD);
}

static eryx_runtime *build(const char *site, int preimport, double *ms)
{
    eryx_runtime_config cfg;
    eryx_runtime_config_default(&cfg);
    const char *dirs[] = {site};
    static const char *const imports[] = {"jinja2"};
    if (site) {
        cfg.site_packages = dirs;
        cfg.n_site_packages = 1;
    }
    if (preimport) {
        cfg.imports = imports;
        cfg.n_imports = 1;
    }
    double t0 = now_ms();
    eryx_runtime *rt;
    int rc = eryx_runtime_new(&cfg, &rt);
    if (rc != ERYX_OK)
        die("runtime_new", rc);
    *ms = now_ms() - t0;
    return rt;
}

/* Loads path repeats times: median load, and median first sandbox + pass. */
static void loads(const char *path, int repeats, double *load_ms, double *first_ms)
{
    double *l = calloc((size_t)repeats, sizeof *l), *f = calloc((size_t)repeats, sizeof *f);
    for (int i = 0; i < repeats; i++) {
        eryx_runtime_config cfg;
        eryx_runtime_config_default(&cfg);
        cfg.image_path = path;
        double t0 = now_ms();
        eryx_runtime *rt;
        int rc = eryx_runtime_new(&cfg, &rt);
        if (rc != ERYX_OK)
            die("load", rc);
        double t1 = now_ms();
        eryx_sandbox *sb;
        eryx_result *res = NULL;
        if ((rc = eryx_sandbox_new(rt, NULL, &sb)) != ERYX_OK ||
            (rc = eryx_sandbox_run(sb, "pass", 4, &res)) != ERYX_OK)
            die("first run", rc);
        double t2 = now_ms();
        eryx_result_free(res);
        eryx_sandbox_free(sb);
        eryx_runtime_free(rt);
        l[i] = t1 - t0;
        f[i] = t2 - t1;
    }
    *load_ms = median(l, repeats);
    *first_ms = median(f, repeats);
    free(l);
    free(f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_image SITE_DIR [repeats]\n");
        return 2;
    }
    const char *site = argv[1];
    int repeats = argc > 2 ? atoi(argv[2]) : 15;
    if (repeats < 1)
        repeats = 1;
    char dir[] = "/tmp/eryx-bench-image-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char p_default[64], p_jinja[64];
    snprintf(p_default, sizeof p_default, "%s/default.img", dir);
    snprintf(p_jinja, sizeof p_jinja, "%s/jinja2.img", dir);

    double b_default, b_plain, b_pre, s_default, s_jinja;
    double cold_new_default, cold_first_default, cold_new_jinja, cold_first_jinja;
    eryx_runtime *rt = build(NULL, 0, &b_default);
    cold_sandboxes(rt, &cold_new_default, &cold_first_default);
    double t0 = now_ms();
    if (eryx_runtime_save_image(rt, p_default) != ERYX_OK)
        die("save", 1);
    s_default = now_ms() - t0;
    uint64_t size_default = 0, size_jinja = 0;
    eryx_runtime_image_size(rt, &size_default);
    eryx_runtime_free(rt);

    eryx_runtime *plain = build(site, 0, &b_plain);
    eryx_runtime *pre = build(site, 1, &b_pre);
    t0 = now_ms();
    if (eryx_runtime_save_image(pre, p_jinja) != ERYX_OK)
        die("save", 1);
    s_jinja = now_ms() - t0;
    eryx_runtime_image_size(pre, &size_jinja);
    cold_sandboxes(pre, &cold_new_jinja, &cold_first_jinja);

    double plain_whole, plain_run, pre_whole, pre_run;
    fresh_runs(plain, repeats, &plain_whole, &plain_run);
    fresh_runs(pre, repeats, &pre_whole, &pre_run);
    eryx_runtime_free(plain);
    eryx_runtime_free(pre);

    double l_default, f_default, l_jinja, f_jinja;
    loads(p_default, repeats, &l_default, &f_default);
    loads(p_jinja, repeats, &l_jinja, &f_jinja);

    printf("{\"repeats\": %d, \"build_default_ms\": %.2f, \"save_default_ms\": %.2f, "
           "\"image_default_bytes\": %llu, \"load_default_ms\": %.2f, "
           "\"first_run_default_ms\": %.2f, \"build_plain_ms\": %.2f, \"build_jinja_ms\": %.2f, "
           "\"save_jinja_ms\": %.2f, \"image_jinja_bytes\": %llu, \"load_jinja_ms\": %.2f, "
           "\"first_run_jinja_ms\": %.2f, \"fresh_plain_ms\": %.2f, \"fresh_plain_run_ms\": "
           "%.2f, \"fresh_preimported_ms\": %.2f, \"fresh_preimported_run_ms\": %.2f, "
           "\"cold_new_default_us\": %.1f, \"cold_first_run_default_us\": %.1f, "
           "\"cold_new_jinja_us\": %.1f, \"cold_first_run_jinja_us\": %.1f}\n",
           repeats, b_default, s_default, (unsigned long long)size_default, l_default,
           f_default, b_plain, b_pre, s_jinja, (unsigned long long)size_jinja, l_jinja, f_jinja,
           plain_whole, plain_run, pre_whole, pre_run, cold_new_default, cold_first_default,
           cold_new_jinja, cold_first_jinja);
    unlink(p_default);
    unlink(p_jinja);
    rmdir(dir);
    return 0;
}
