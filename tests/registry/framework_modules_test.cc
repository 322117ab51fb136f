// The framework modules beyond head: router, i18n (with_locale and its
// module-level state), request-store and cache-runtime's deployment-scoped keys.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <stdlib.h>

#include <barrier>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "modgraph/context/asio.h"
#include "modgraph/context/request_context.h"
#include "modgraph/context/thread.h"
#include "modgraph/modules/cache_runtime.h"
#include "modgraph/modules/i18n.h"
#include "modgraph/modules/request_store.h"
#include "modgraph/modules/router.h"
#include "topology_fixture.h"

namespace modgraph {
namespace {

using modules::CacheRuntimeApi;
using modules::I18nApi;
using modules::RequestStoreApi;
using modules::RouterApi;
using ::testing::HasSubstr;
using namespace ::modgraph::testing;

// A topology of one isolated environment loading `entries`, with settings.
std::unique_ptr<Topology> Single(std::vector<std::string> entries,
                                 std::map<std::string, std::string> settings = {}) {
  TopologySpec spec{.name = "single", .environments = {}, .origin = "test", .settings = settings};
  spec.environments.push_back(
      {.name = "ssr", .module_roots = {kModuleDir}, .entry_modules = std::move(entries)});
  return LoadTopology(spec, Policy::kWarn);
}

TEST_F(SentinelTest, RegisteredRouterKeepsEachRequestsRoute) {
  auto dev = Dev(Policy::kAuto);
  const RouterApi& router = ApiOf<RouterApi>(*dev, "ssr", "router");
  RequestContext first = RequestContext::create(1);
  RequestContext second = RequestContext::create(2);
  run_request(first, [&] { router.set_route("/a", {{"id", "1"}}); });
  run_request(second, [&] { router.set_route("/b", {{"id", "2"}}); });
  EXPECT_EQ(run_request(first, [&] { return router.pathname(); }), "/a");
  EXPECT_EQ(run_request(second, [&] { return router.query().at("id"); }), "2");
  EXPECT_TRUE(router.module_state()->pathname.empty());
  EXPECT_EQ(sentinel().fallback_hit_count(), 0u);
}

TEST_F(SentinelTest, UnregisteredRouterSharesTheRouteAndLeaks) {
  auto dev = Dev(Policy::kWarn);
  const RouterApi& router = ApiOf<RouterApi>(*dev, "ssr", "router");
  RequestContext first = RequestContext::create(1);
  RequestContext second = RequestContext::create(2);
  run_request(first, [&] { router.set_route("/a", {}); });
  run_request(second, [&] { router.set_route("/b", {}); });
  EXPECT_EQ(run_request(first, [&] { return router.pathname(); }), "/b");
  ASSERT_GE(sentinel().leak_count(), 1u);
  EXPECT_EQ(sentinel().leaks().front().slot, "get_router_state");
}

TEST_F(SentinelTest, WithLocaleIsolatesOutsideTheUnifiedScopeAndFallsBackOutsideIt) {
  auto dev = Dev(Policy::kWarn);
  const I18nApi& i18n = ApiOf<I18nApi>(*dev, "ssr", "i18n");
  EXPECT_EQ(i18n.locale(), "en");  // the fallback locale
  std::string inner;
  modules::WithLocale(i18n, "ja", [&] {
    inner = i18n.translate("greeting");
    // append, not `"/" + std::string&&`: GCC 12 -O3 warns falsely there (-Wrestrict, PR 105329).
    modules::WithLocale(i18n, "fr", [&] { inner.append("/").append(i18n.translate("greeting")); });
    inner.append("/").append(i18n.locale());
  });
  EXPECT_EQ(inner, "こんにちは/Bonjour/ja");
  // Outside with_locale, the module-level state: shared, as documented.
  i18n.set_locale("fr");
  EXPECT_EQ(i18n.fallback_store()->locale, "fr");
  EXPECT_EQ(i18n.translate("farewell"), "Au revoir");
  // Inside the unified scope each request has its own locale.
  RequestContext first = RequestContext::create(1);
  RequestContext second = RequestContext::create(2);
  run_request(first, [&] { i18n.set_locale("ja"); });
  run_request(second, [&] { i18n.set_locale("en"); });
  EXPECT_EQ(run_request(first, [&] { return i18n.locale(); }), "ja");
  EXPECT_EQ(run_request(second, [&] { return i18n.locale(); }), "en");
  EXPECT_EQ(i18n.fallback_store()->locale, "fr");
  EXPECT_EQ(sentinel().fallback_hit_count(), 0u);  // ssr#i18n is registered in dev
}

// with_locale replaces, it does not mutate: two branches of one request (two
// pool tasks carrying its context) are both inside with_locale at once, each
// translates in its own locale, and afterwards the request's locale is as it
// was. Runs under ThreadSanitizer with the threads label (the with-locale-two-
// branches case).
TEST_F(SentinelTest, WithLocaleInTwoBranchesOfOneRequestKeepsEachBranchsLocale) {
  auto dev = Dev(Policy::kWarn);
  const I18nApi& i18n = ApiOf<I18nApi>(*dev, "ssr", "i18n");
  boost::asio::thread_pool pool(2);
  for (int round = 0; round < 20; ++round) {
    std::barrier both_inside(2);
    std::string fr, ja, after, set_inside;
    RequestContext request = RequestContext::create();
    run_request(request, [&] {
      i18n.set_locale("en");
      auto branch = [&](const char* locale, std::string& out) {
        return submit(pool, [&, locale] {
          modules::WithLocale(i18n, locale, [&] {
            both_inside.arrive_and_wait();
            out = i18n.translate("greeting");
            both_inside.arrive_and_wait();
          });
        });
      };
      auto a = branch("fr", fr);
      auto b = branch("ja", ja);
      a.get();
      b.get();
      // set_locale inside with_locale changes the scope's locale only.
      modules::WithLocale(i18n, "fr", [&] {
        i18n.set_locale("ja");
        set_inside = i18n.translate("farewell");
      });
      after = i18n.locale();
    });
    EXPECT_EQ(fr, "Bonjour") << "round " << round;
    EXPECT_EQ(ja, "こんにちは") << "round " << round;
    EXPECT_EQ(set_inside, "さようなら");
    EXPECT_EQ(after, "en") << "round " << round;
  }
  EXPECT_EQ(sentinel().fallback_hit_count(), 0u);
}

// Two coroutines of one request on one io thread, each inside with_locale
// across a co_await: interleaved, each keeps its own locale.
TEST_F(SentinelTest, WithLocaleAcrossInterleavedCoroutinesOfOneRequest) {
  auto dev = Dev(Policy::kWarn);
  const I18nApi& i18n = ApiOf<I18nApi>(*dev, "ssr", "i18n");
  boost::asio::io_context io;
  std::vector<std::string> seen;
  RequestContext request = RequestContext::create();
  run_request(request, [&] {
    for (const char* locale : {"fr", "ja"}) {
      modgraph::co_spawn(
          io,
          [&, locale]() -> boost::asio::awaitable<void> {
            // with_locale's callback is synchronous: carry its context into
            // the coroutine the way any code would, with a scope.
            Context scoped;
            modules::WithLocale(i18n, locale, [&] { scoped = current(); });
            ContextScope scope(std::move(scoped));
            co_await boost::asio::post(boost::asio::use_awaitable);
            seen.push_back(i18n.translate("greeting"));
            co_await boost::asio::post(boost::asio::use_awaitable);
            seen.push_back(i18n.locale());
          },
          boost::asio::detached);
    }
  });
  io.run();
  EXPECT_THAT(seen, ::testing::UnorderedElementsAre("Bonjour", "こんにちは", "fr", "ja"));
  EXPECT_EQ(run_request(request, [&] { return i18n.locale(); }), "en");
}

TEST(FrameworkModulesTest, RequestStoreIsPerRequestAndFreshOutside) {
  auto topology = Single({"request-store"});
  const RequestStoreApi& api = ApiOf<RequestStoreApi>(*topology, "ssr", "request-store");
  RequestContext first = RequestContext::create(1);
  RequestContext second = RequestContext::create(2);
  run_request(first, [&] { api.store().set<std::string>("db", "client-1"); });
  run_request(second, [&] { api.store().set<std::string>("db", "client-2"); });
  EXPECT_EQ(*run_request(first, [&] { return api.store().get<std::string>("db"); }), "client-1");
  EXPECT_EQ(*run_request(second, [&] { return api.store().get<std::string>("db"); }), "client-2");
  api.store().set<std::string>("db", "outside");
  EXPECT_EQ(api.store().get<std::string>("db"), nullptr);
}

std::string Compute(std::string_view args) { return fmt::format("computed({})", args); }

TEST(CacheRuntimeTest, KeysAreSeededByDeploymentThenBuildId) {
  auto blue = Single({"cache-runtime"}, {{"deployment_id", "blue-1"}, {"build_id", "b7"}});
  auto green = Single({"cache-runtime"}, {{"deployment_id", "green-2"}, {"build_id", "b7"}});
  auto unset = Single({"cache-runtime"}, {{"build_id", "b7"}});
  const CacheRuntimeApi& blue_cache = ApiOf<CacheRuntimeApi>(*blue, "ssr", "cache-runtime");
  const CacheRuntimeApi& green_cache = ApiOf<CacheRuntimeApi>(*green, "ssr", "cache-runtime");
  const CacheRuntimeApi& build_cache = ApiOf<CacheRuntimeApi>(*unset, "ssr", "cache-runtime");
  EXPECT_EQ(blue_cache.key_seed(), "blue-1");
  EXPECT_EQ(build_cache.key_seed(), "b7");
  EXPECT_NE(blue_cache.cache_key("getUser", "42"), green_cache.cache_key("getUser", "42"));
  EXPECT_NE(blue_cache.cache_key("getUser", "42"), build_cache.cache_key("getUser", "42"));
  EXPECT_THAT(blue_cache.cache_key("getUser", "42"), HasSubstr("blue-1"));
  EXPECT_EQ(blue_cache.use_cache("getUser", "42", &Compute), "computed(42)");
  EXPECT_EQ(blue_cache.entry_count(), 1u);
}

TEST(CacheRuntimeTest, ARequestsDeploymentIdWinsAndNeverSharesAnEntry) {
  auto topology = Single({"cache-runtime"}, {{"deployment_id", "startup"}});
  const CacheRuntimeApi& cache = ApiOf<CacheRuntimeApi>(*topology, "ssr", "cache-runtime");
  RequestContext first = RequestContext::create(1);
  RequestContext second = RequestContext::create(2);
  EXPECT_TRUE(run_request(first, [&] { return cache.set_request_deployment_id("dpl-a"); }));
  EXPECT_TRUE(run_request(second, [&] { return cache.set_request_deployment_id("dpl-b"); }));
  EXPECT_FALSE(run_request(second, [&] { return cache.set_request_deployment_id("bad id!"); }));
  EXPECT_FALSE(cache.set_request_deployment_id("dpl-c"));  // no request scope
  EXPECT_EQ(run_request(first, [&] { return cache.key_seed(); }), "dpl-a");
  EXPECT_EQ(run_request(second, [&] { return cache.key_seed(); }), "dpl-b");
  EXPECT_EQ(cache.key_seed(), "startup");
  run_request(first, [&] { cache.use_cache("page", "/", &Compute); });
  run_request(second, [&] { cache.use_cache("page", "/", &Compute); });
  EXPECT_EQ(cache.entry_count(), 2u);  // one entry per deployment
}

TEST(CacheRuntimeTest, InvalidDeploymentIdIsAClearError) {
  TopologySpec spec{.name = "bad",
                    .environments = {},
                    .origin = "test",
                    .settings = {{"deployment_id", "has space"}}};
  spec.environments.push_back(
      {.name = "ssr", .module_roots = {kModuleDir}, .entry_modules = {"cache-runtime"}});
  auto topology = Topology::Create(spec);
  ASSERT_TRUE(topology.ok());
  std::vector<absl::Status> errors = (*topology)->LoadEntries();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message(), HasSubstr("ssr#cache-runtime"));
  EXPECT_THAT(errors[0].message(), HasSubstr("invalid deployment id 'has space'"));
  EXPECT_THAT(errors[0].message(), HasSubstr("deployment_id in test"));
  EXPECT_EQ((*topology)->environment("ssr")->Find("cache-runtime"), nullptr);
}

TEST(CacheRuntimeTest, DeploymentIdFromTheEnvironmentVariable) {
  ::setenv("MODGRAPH_DEPLOYMENT_ID", "from-env", 1);
  auto topology = Single({"cache-runtime"});
  ::setenv("MODGRAPH_DEPLOYMENT_ID", "no way", 1);
  TopologySpec spec{.name = "env", .environments = {}, .origin = "test", .settings = {}};
  spec.environments.push_back(
      {.name = "ssr", .module_roots = {kModuleDir}, .entry_modules = {"cache-runtime"}});
  auto invalid = Topology::Create(spec);
  ::unsetenv("MODGRAPH_DEPLOYMENT_ID");
  EXPECT_EQ(ApiOf<CacheRuntimeApi>(*topology, "ssr", "cache-runtime").key_seed(), "from-env");
  ASSERT_TRUE(invalid.ok());
  std::vector<absl::Status> errors = (*invalid)->LoadEntries();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0].message(), HasSubstr("(from MODGRAPH_DEPLOYMENT_ID)"));
}

}  // namespace
}  // namespace modgraph
