#include "modgraph/context/request_context.h"

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "gtest/gtest.h"
#include "modgraph/context/registrations.h"

namespace modgraph {
namespace {

struct HeadState {
  HeadState() { ++constructed; }
  ~HeadState() { ++destroyed; }
  HeadState(const HeadState&) = delete;
  HeadState& operator=(const HeadState&) = delete;

  std::string title;
  static inline int constructed = 0;
  static inline int destroyed = 0;
};

struct RouterState {
  std::string path;
};

const StateKind<HeadState> kHead{"test.head"};
const StateKind<RouterState> kRouter{"test.router"};
const Key<int> kTag;

TEST(RequestContextTest, NoRequestScopeOutsideRunRequest) {
  EXPECT_EQ(current_request_id(), 0u);
  EXPECT_FALSE(in_request_scope());
  EXPECT_EQ(kHead.get(), nullptr);
}

TEST(RequestContextTest, RunRequestInstallsTheRequestScope) {
  const RequestContext req = RequestContext::create(17);
  EXPECT_EQ(req.id(), 17u);
  const std::uint64_t seen = run_request(req, [] {
    EXPECT_TRUE(in_request_scope());
    return current_request_id();
  });
  EXPECT_EQ(seen, 17u);
  EXPECT_EQ(current_request_id(), 0u);
}

TEST(RequestContextTest, IdZeroIsRejected) {
  EXPECT_THROW(RequestContext::create(0), std::invalid_argument);
}

TEST(RequestContextTest, GeneratedIdsAreDistinctAndNonZero) {
  const RequestContext a = RequestContext::create();
  const RequestContext b = RequestContext::create();
  EXPECT_NE(a.id(), 0u);
  EXPECT_NE(a.id(), b.id());
}

TEST(RequestContextTest, RequestInheritsValuesCurrentAtCreation) {
  const RequestContext req = run(with(kTag, 4), [] { return RequestContext::create(5); });
  run_request(req, [] {
    ASSERT_NE(get(kTag), nullptr);
    EXPECT_EQ(*get(kTag), 4);
  });
}

TEST(RequestContextTest, ChildScopesInsideARequestKeepTheRequest) {
  const RequestContext req = RequestContext::create(8);
  run_request(req, [] {
    HeadState* head = kHead.get();
    run(with(kTag, 1), [&] {
      EXPECT_EQ(current_request_id(), 8u);
      EXPECT_EQ(kHead.get(), head);
    });
  });
}

TEST(RequestContextTest, StateIsCreatedLazilyOncePerRequestAndDestroyedWithIt) {
  const int constructed = HeadState::constructed;
  const int destroyed = HeadState::destroyed;
  {
    const RequestContext req = RequestContext::create(1);
    EXPECT_EQ(HeadState::constructed, constructed);  // not touched yet
    run_request(req, [&] {
      kRouter.get()->path = "/";  // another kind does not create this one
      EXPECT_EQ(HeadState::constructed, constructed);
      kHead.get()->title = "one";
      EXPECT_EQ(kHead.get()->title, "one");
    });
    EXPECT_EQ(HeadState::constructed, constructed + 1);
    // Pending work keeps the request alive.
    const Context pending = run_request(req, [] { return snapshot(); });
    const_cast<RequestContext&>(req) = RequestContext::create(2);
    EXPECT_EQ(HeadState::destroyed, destroyed);
    run(pending, [] { EXPECT_EQ(kHead.get()->title, "one"); });
  }
  EXPECT_EQ(HeadState::destroyed, destroyed + 1);
}

TEST(RequestContextTest, RequestsDoNotShareState) {
  const RequestContext a = RequestContext::create(1);
  const RequestContext b = RequestContext::create(2);
  run_request(a, [] { kHead.get()->title = "a"; });
  run_request(b, [] { kHead.get()->title = "b"; });
  run_request(a, [] { EXPECT_EQ(kHead.get()->title, "a"); });
  run_request(b, [] { EXPECT_EQ(kHead.get()->title, "b"); });
}

// The dual path: unified scope first, then the kind's standalone scope, then the
// caller's module-level default.
TEST(RequestContextTest, FallbackOrderIsUnifiedThenStandaloneThenDefault) {
  RouterState module_default{"default"};
  auto router = [&] {
    RouterState* state = kRouter.get();
    return state != nullptr ? state : &module_default;
  };
  RouterState standalone{"standalone"};
  const RequestContext req = RequestContext::create(3);
  run_request(req, [] { kRouter.get()->path = "unified"; });

  EXPECT_EQ(router()->path, "default");
  kRouter.run_standalone(standalone, [&] {
    EXPECT_EQ(router()->path, "standalone");
    EXPECT_EQ(kHead.get(), nullptr);  // other kinds have no standalone scope here
    run_request(req, [&] { EXPECT_EQ(router()->path, "unified"); });
    EXPECT_EQ(router()->path, "standalone");
  });
  run_request(req, [&] {
    kRouter.run_standalone(standalone, [&] { EXPECT_EQ(router()->path, "unified"); });
  });
  EXPECT_EQ(router()->path, "default");
}

TEST(RequestContextTest, SameNameGivesSameIndexAndInstance) {
  // A second module copy constructs its own StateKind object with the same name.
  const StateKind<HeadState> copy{"test.head"};
  EXPECT_EQ(copy.index(), kHead.index());
  const RequestContext req = RequestContext::create(4);
  run_request(req, [&] { EXPECT_EQ(copy.get(), kHead.get()); });
}

TEST(RequestContextTest, SameNameWithAnotherTypeFailsLoudlyNamingTheKind) {
  try {
    const StateKind<RouterState> wrong{"test.head"};
    FAIL() << "a second registration with another type must throw";
  } catch (const std::logic_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("state kind 'test.head'"), std::string::npos) << message;
    EXPECT_NE(message.find("RouterState"), std::string::npos) << message;
  }
}

TEST(RequestContextTest, EmptyKindNameIsRejected) {
  EXPECT_THROW(StateKind<RouterState>{""}, std::logic_error);
}

}  // namespace
}  // namespace modgraph

namespace modgraph {
namespace {

// What environments rely on to close unloaded libraries only when safe.
TEST(RequestGenerationTest, ExpiresOnceEveryEarlierRequestHasEnded) {
  std::optional<RequestContext> earlier = RequestContext::create(1);
  const RequestGenerationWatch before = SealRequestGeneration();
  const RequestContext later = RequestContext::create(2);
  EXPECT_FALSE(before.ended());  // `earlier` may still hold objects from old code
  earlier.reset();
  EXPECT_TRUE(before.ended());  // `later` belongs to the next generation
  EXPECT_EQ(later.id(), 2u);
}

}  // namespace
}  // namespace modgraph

namespace modgraph {
namespace {

// A library retired later must also wait for requests older than the previous
// retirement: they may have called the copy that was current in between.
TEST(RequestGenerationTest, AGenerationAlsoWaitsForEveryEarlierGeneration) {
  std::optional<RequestContext> oldest = RequestContext::create(1);
  const RequestGenerationWatch first = SealRequestGeneration();
  const RequestGenerationWatch second = SealRequestGeneration();  // no request of its own
  EXPECT_FALSE(first.ended());
  EXPECT_FALSE(second.ended());  // `oldest` started before it, too
  oldest.reset();
  EXPECT_TRUE(first.ended());
  EXPECT_TRUE(second.ended());
}

TEST(RequestGenerationTest, AHoldKeepsLaterRetirementsWaitingLikeARequest) {
  std::shared_ptr<const void> hold = HoldRequestGeneration();
  const RequestGenerationWatch sealed = SealRequestGeneration();
  EXPECT_FALSE(sealed.ended());
  hold.reset();
  EXPECT_TRUE(sealed.ended());
}

TEST(RequestGenerationTest, AChainOfManyEmptyGenerationsIsReleasedWithoutRecursion) {
  std::optional<RequestContext> oldest = RequestContext::create(1);
  RequestGenerationWatch last;
  for (int i = 0; i < 200000; ++i) last = SealRequestGeneration();
  EXPECT_FALSE(last.ended());
  oldest.reset();  // would overflow the stack if each link released the next recursively
  EXPECT_TRUE(last.ended());
}

}  // namespace
}  // namespace modgraph

namespace modgraph {
namespace {

struct DraftV1 {
  int words = 0;
};
struct DraftV2 {
  int words = 0;
  long revisions[4] = {};
};

// Inside a scope (a library being loaded) a clash is refused, not thrown: a
// throw from a namespace-scope constructor inside dlopen would end the process.
TEST(RegistrationScopeTest, AClashInsideAScopeIsRefusedNamingBothTypesAndRegistrants) {
  const StateKind<DraftV1> first{"test.scope.draft"};
  std::uint32_t refused_index = 99;
  std::vector<std::string> errors;
  {
    RegistrationScope scope("ssr#draft ('/modules/draft.so')");
    const StateKind<DraftV2> second{"test.scope.draft"};
    refused_index = second.index();
    errors = scope.errors();
  }
  EXPECT_EQ(refused_index, 0u);
  EXPECT_NE(first.index(), 0u);
  ASSERT_GE(errors.size(), 1u);  // and its standalone-scope key, named after the kind
  EXPECT_NE(errors[0].find("state kind 'test.scope.draft'"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("DraftV1 (size 4, align 4)"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("DraftV2 (size 40, align 8) by ssr#draft ('/modules/draft.so')"),
            std::string::npos)
      << errors[0];
  EXPECT_NE(errors[0].find("context_test"), std::string::npos) << errors[0];  // the first one
}

TEST(RegistrationScopeTest, AnEmptyKindNameInsideAScopeIsRefused) {
  RegistrationScope scope("ssr#nameless");
  const StateKind<DraftV1> nameless{""};
  EXPECT_EQ(nameless.index(), 0u);
  ASSERT_EQ(scope.errors().size(), 1u);
  EXPECT_NE(scope.errors()[0].find("empty name"), std::string::npos);
}

TEST(RegistrationScopeTest, ScopesNestAndOnlyTheInnermostCollects) {
  const Key<int> taken("test.scope.key");
  RegistrationScope outer("outer");
  {
    RegistrationScope inner("inner");
    const Key<double> clash("test.scope.key");
    EXPECT_EQ(inner.errors().size(), 1u);
  }
  EXPECT_TRUE(outer.errors().empty());
}

TEST(RegistrationScopeTest, EveryRegistrationIsRecordedWithItsObjectFile) {
  {
    RegistrationScope scope("ssr#recorded ('/modules/recorded.so')");
    const StateKind<DraftV1> recorded{"test.scope.recorded"};
  }
  bool found = false;
  for (const NamedRegistration& r : ListNamedRegistrations()) {
    if (r.name != "test.scope.recorded") continue;
    found = true;
    EXPECT_EQ(r.registry, "state kind");
    EXPECT_EQ(r.registrant, "ssr#recorded ('/modules/recorded.so')");
    EXPECT_NE(r.object.find("context_test"), std::string::npos) << r.object;
    EXPECT_TRUE(r.live);
    EXPECT_FALSE(r.refused);
    EXPECT_NE(r.type.find("DraftV1"), std::string::npos);
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace modgraph
