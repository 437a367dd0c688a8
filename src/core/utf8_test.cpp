#include "core/utf8.h"

#include <gtest/gtest.h>

namespace outbound::core {
namespace {

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("Grüße, 東京, 😀"));
}

TEST(Utf8Test, RefusesIllFormedText) {
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("caf\xc3"));           // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(Utf8Test, ScrubReplacesEachBadSequence) {
  EXPECT_EQ(ScrubUtf8("Grüße"), "Grüße");
  EXPECT_EQ(ScrubUtf8("a\xff"
                      "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(ScrubUtf8("caf\xc3"), "caf\xEF\xBF\xBD");
  EXPECT_TRUE(IsValidUtf8(ScrubUtf8("\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80 ok")));
}

}  // namespace
}  // namespace outbound::core
