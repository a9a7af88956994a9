export { profile, profileIntervals, Profile, type Frame, type ProfileOptions, type ProfileSample, type ProfileTotals, type SpeedscopeFile } from './profile.js';
