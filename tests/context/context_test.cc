#include "modgraph/context/context.h"

#include <stdexcept>
#include <string>

#include "gtest/gtest.h"

namespace modgraph {
namespace {

const Key<int> kNumber;
const Key<std::string> kName;

TEST(ContextTest, NothingIsCurrentOutsideAnyScope) {
  EXPECT_TRUE(current().empty());
  EXPECT_EQ(get(kNumber), nullptr);
}

TEST(ContextTest, RunInstallsTheContextAndReturnsTheResult) {
  const int result = run(with(kNumber, 7), [] {
    const int* number = get(kNumber);
    return number == nullptr ? -1 : *number * 6;
  });
  EXPECT_EQ(result, 42);
  EXPECT_EQ(get(kNumber), nullptr);
}

TEST(ContextTest, NestedScopesRestoreTheirParent) {
  run(with(kNumber, 1), [] {
    run(with(kNumber, 2), [] {
      ASSERT_NE(get(kNumber), nullptr);
      EXPECT_EQ(*get(kNumber), 2);
    });
    ASSERT_NE(get(kNumber), nullptr);
    EXPECT_EQ(*get(kNumber), 1);
  });
  EXPECT_EQ(get(kNumber), nullptr);
}

TEST(ContextTest, ExceptionRestoresThePreviousContext) {
  run(with(kNumber, 1), [] {
    EXPECT_THROW(run(with(kNumber, 2), []() -> int { throw std::runtime_error("boom"); }),
                 std::runtime_error);
    ASSERT_NE(get(kNumber), nullptr);
    EXPECT_EQ(*get(kNumber), 1);
  });
  EXPECT_TRUE(current().empty());
}

TEST(ContextTest, ChildReplacesValuesWithoutMutatingTheParent) {
  const Context parent = Context().with(kNumber, 1).with(kName, std::string("parent"));
  const Context child = parent.with(kNumber, 2);
  ASSERT_NE(parent.get(kNumber), nullptr);
  EXPECT_EQ(*parent.get(kNumber), 1);
  EXPECT_EQ(*child.get(kNumber), 2);
  ASSERT_NE(child.get(kName), nullptr);
  EXPECT_EQ(*child.get(kName), "parent");  // inherited
}

TEST(ContextTest, ChildOutlivesItsParentHandle) {
  Context child;
  {
    const Context parent = Context().with(kName, std::string("kept alive"));
    child = parent.with(kNumber, 3);
  }
  ASSERT_NE(child.get(kName), nullptr);
  EXPECT_EQ(*child.get(kName), "kept alive");
}

TEST(ContextTest, BindCarriesTheContextIntoALaterCallback) {
  auto callback =
      run(with(kNumber, 5), [] { return bind([](int add) { return *get(kNumber) + add; }); });
  EXPECT_EQ(get(kNumber), nullptr);
  EXPECT_EQ(callback(1), 6);
  EXPECT_EQ(get(kNumber), nullptr);
}

TEST(ContextTest, SnapshotIsTheCurrentContext) {
  const Context outer = with(kNumber, 9);
  const Context captured = run(outer, [] { return snapshot(); });
  EXPECT_EQ(captured, outer);
  EXPECT_TRUE(snapshot().empty());
}

TEST(ContextTest, NamedKeysShareOneSlotAcrossDeclarations) {
  // Two declarations of one name stand for the same key in two module copies.
  const Key<int> first("test.context.shared");
  const Key<int> second("test.context.shared");
  EXPECT_EQ(first.index(), second.index());
  run(with(first, 11), [&] {
    ASSERT_NE(get(second), nullptr);
    EXPECT_EQ(*get(second), 11);
  });
}

TEST(ContextTest, NamedKeyWithAnotherTypeFailsLoudly) {
  const Key<int> first("test.context.typed");
  try {
    const Key<double> second("test.context.typed");
    FAIL() << "registering a key name with another type must throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("test.context.typed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("double"), std::string::npos) << e.what();
  }
}

// run() borrows its context; if the body drops the last reference, the context
// dies while installed. The anchor must not be left pointing at freed memory.
TEST(ContextTest, DroppingTheLastReferenceInsideItsScopeClearsTheAnchor) {
  Context ctx = Context().with(kNumber, 5);
  const int* seen_after = &*ctx.get(kNumber);
  run(ctx, [&] {
    ASSERT_NE(get(kNumber), nullptr);
    ctx = Context();  // the last reference: the context is destroyed here
    seen_after = get(kNumber);
  });
  EXPECT_EQ(seen_after, nullptr);
  EXPECT_TRUE(current().empty());
}

TEST(ContextTest, ReleasingALongChainDoesNotRecurse) {
  Context ctx;
  for (int i = 0; i < 200000; ++i) ctx = ctx.with(kNumber, i);
  ASSERT_NE(ctx.get(kNumber), nullptr);
  EXPECT_EQ(*ctx.get(kNumber), 199999);
  ctx = Context();  // would overflow the stack if release recursed
  EXPECT_TRUE(ctx.empty());
}

}  // namespace
}  // namespace modgraph
